#![allow(unused)]
// Sync and async functions, with and without a fallback, a method, an
// explicit client and environment. With no client set, every flag is off:
// fallbacks run and functions without one return Default::default().
use vexil_client::feature_flag;

fn old_greeting(user: &str, name: String) -> String {
    format!("hello {name} ({user})")
}

#[feature_flag("greeting.v2", user = user, fallback = old_greeting)]
fn greeting(user: &str, name: String) -> String {
    format!("welcome back, {name}")
}

#[feature_flag("beta", user = user_id)]
fn beta_discount(user_id: String) -> Option<u32> {
    Some(10)
}

async fn old_page(user_id: &str, page: u32) -> u32 {
    page
}

#[feature_flag("new_dashboard", user = user_id, fallback = old_page, environment = "production")]
async fn new_page(user_id: &str, page: u32) -> u32 {
    page * 2
}

fn classic_checkout(user: &str) -> &'static str {
    "classic"
}

// Runs only for users the experiment serves its "one-page" variant.
#[feature_flag("checkout.experiment", variant = "one-page", user = user, fallback = classic_checkout)]
fn one_page_checkout(user: &str) -> &'static str {
    "one-page"
}

struct Service {
    client: Option<vexil_client::Client>,
}

impl Service {
    fn old_price(&self, customer: &str) -> u32 {
        100
    }

    #[feature_flag("pricing.v2", user = customer, fallback = Self::old_price, client = self.client.as_ref().expect("a client"))]
    fn price(&self, customer: &str) -> u32 {
        90
    }
}

fn main() {
    assert_eq!(greeting("u1", "Ada".into()), "hello Ada (u1)");
    assert_eq!(beta_discount("u1".into()), None);
    assert_eq!(one_page_checkout("u1"), "classic");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    assert_eq!(runtime.block_on(new_page("u1", 3)), 3);
    let _ = Service { client: None };
}
