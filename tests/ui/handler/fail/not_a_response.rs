use sessions::handler;

struct Page;

#[handler]
async fn index() -> Page {
    Page
}

fn main() {}
