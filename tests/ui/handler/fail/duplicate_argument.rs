use sessions::handler;

#[handler(name = "home", name = "start")]
async fn index() {}

fn main() {}
