use sessions::handler;

#[handler]
async fn index<T: Default>(name: String) -> String {
    let _ = T::default();
    name
}

fn main() {}
