use std::borrow::Cow;

use sessions::handler;

#[handler]
async fn index<'a>(name: Cow<'a, str>) -> String {
    name.into_owned()
}

fn main() {}
