use sessions::handler;

#[handler]
async fn index((a, b): (String, String)) -> String {
    a + &b
}

fn main() {}
