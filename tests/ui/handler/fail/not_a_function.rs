use sessions::handler;

#[handler]
struct Index;

fn main() {}
