#![allow(unused)]
#[vexil_client::feature_flag(user = user_id)]
fn dashboard(user_id: &str) -> bool {
    true
}

fn main() {}
