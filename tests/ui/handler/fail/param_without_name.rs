use sessions::handler;

#[handler]
async fn index(_: String) {}

fn main() {}
