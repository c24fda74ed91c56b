use sessions::handler;

struct Api;

impl Api {
    #[handler]
    async fn index(&self) {}
}

fn main() {}
