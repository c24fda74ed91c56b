use sessions::handler;

#[handler]
async fn index(name: &str) -> String {
    name.to_owned()
}

fn main() {}
