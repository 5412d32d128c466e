//! Scans: live keys of one namespace in byte order, with prefix, start (inclusive), end
//! (exclusive), reverse and limit; deleted keys and other namespaces never appear; pages
//! are capped and say `more`; keys and values come as text and base64.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

fn keys(v: &serde_json::Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scans_select_and_order_keys() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &["--max-scan-items", "4"]);
    for k in ["a1", "a2", "a3", "b1", "b2", "c1"] {
        put(&s, "ns", k, k.to_uppercase().as_bytes());
    }
    put(&s, "other", "a0", b"x");
    assert_eq!(
        call("DELETE", &s.url("/v1/ns/ns/kv/a2"), None, &[]).status,
        200
    );
    let scan = |q: &str| {
        let r = call("GET", &s.url(&format!("/v1/ns/ns/scan?{q}")), None, &[]);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        r.json()
    };

    let page = scan("prefix=a");
    assert_eq!(keys(&page), ["a1", "a3"]);
    assert_eq!(page["more"], false);
    assert_eq!(page["count"], 2);
    let item = &page["items"][0];
    assert_eq!(item["value"], "A1");
    assert_eq!(item["value_b64"], "QTE=");
    assert_eq!(item["key_b64"], "YTE=");
    assert_eq!(item["version"], 1);
    assert!(item["lsn"].as_u64().unwrap() > 0);

    assert_eq!(keys(&scan("start=a3&end=c1")), ["a3", "b1", "b2"]);
    assert_eq!(keys(&scan("prefix=b&reverse=true")), ["b2", "b1"]);
    assert_eq!(keys(&scan("limit=2")), ["a1", "a3"]);
    assert_eq!(keys(&scan("reverse=1&limit=1")), ["c1"]);
    // Empty parameters count as absent.
    assert_eq!(keys(&scan("prefix=&start=&end=&reverse=&limit=")).len(), 4);

    // The page limit caps `limit` and says there is more, naming the last key.
    let page = scan("limit=100");
    assert_eq!(keys(&page), ["a1", "a3", "b1", "b2"]);
    assert_eq!(page["more"], true);
    assert_eq!(page["last_key"], "b2");
    assert_eq!(keys(&scan("start=b2%00")), ["c1"]);

    // Binary prefix, percent-encoded.
    let r = call("PUT", &s.url("/v1/ns/ns/kv/%FF%00z"), Some(b"bin"), &[]);
    assert_eq!(r.status, 200);
    let page = scan("prefix=%FF");
    assert_eq!(page["items"][0]["key"], serde_json::Value::Null);
    assert_eq!(page["items"][0]["key_b64"], "/wB6");

    // Nothing in an empty or unknown namespace; bad parameters are 400.
    assert_eq!(
        call("GET", &s.url("/v1/ns/none/scan"), None, &[]).json()["count"],
        0
    );
    call("GET", &s.url("/v1/ns/ns/scan?limit=-1"), None, &[]).assert_error(400, "bad_query");
    call("GET", &s.url("/v1/ns/ns/scan?reverse=maybe"), None, &[]).assert_error(400, "bad_query");
    call("GET", &s.url("/v1/ns/ns/scan?prefx=a"), None, &[]).assert_error(400, "bad_query");
}
