#![allow(unused)]
struct Page;

#[vexil_client::feature_flag("new_dashboard", user = user_id)]
fn dashboard(user_id: &str) -> Page {
    Page
}

fn main() {}
