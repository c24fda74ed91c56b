use sessions::handler;

#[handler]
async fn index() -> impl std::fmt::Display {
    "hi"
}

fn main() {}
