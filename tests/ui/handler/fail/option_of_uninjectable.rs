use sessions::handler;

struct Database;

#[handler]
async fn index(db: Option<Database>) {
    let _ = db;
}

fn main() {}
