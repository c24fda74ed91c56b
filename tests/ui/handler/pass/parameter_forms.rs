use sessions::{handler, App, BadRequest, Created};

/// Documented handlers keep their docs.
#[handler]
pub async fn documented(mut name: String, _unused: Option<String>) -> Result<Created<String>, BadRequest<&'static str>> {
    name.push('!');
    if name.len() > 10 {
        return Err(BadRequest("too long"));
    }
    Ok(Created(name))
}

#[handler]
#[allow(clippy::unused_async)]
async fn r#type(r#ref: String) -> String {
    r#ref
}

fn main() {
    let mut app = App::new();
    app.post("/", documented).get("/t", r#type);
    app.build().unwrap();
}
