use sessions::handler;

#[handler(nmae = "home")]
async fn index() {}

fn main() {}
