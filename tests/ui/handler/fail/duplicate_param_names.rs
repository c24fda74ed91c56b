use sessions::handler;

#[handler]
async fn index(name: String, _name: String) -> String {
    name
}

fn main() {}
