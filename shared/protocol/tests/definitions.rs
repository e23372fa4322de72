//! The `nats/` definition files against a real nats-server: each file, sent
//! byte for byte to the JetStream API as `nats stream add --config` and
//! `nats consumer add --config` send it, is accepted as written; and the
//! services' own `ensure_*` (which read the same embedded files) create the
//! same objects, idempotently.

use serde_json::{json, Value};
use trawl_protocol::definitions::{ensure_consumer, ensure_stream, CONSUMERS, STREAMS};
use trawl_testkit::NatsServer;

async fn api(client: &async_nats::Client, subject: String, body: Vec<u8>) -> Value {
    let reply = client.request(subject.clone(), body.into()).await.unwrap_or_else(|e| panic!("{subject}: {e}"));
    let v: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(v.get("error").is_none(), "{subject} refused: {v}");
    v
}

#[tokio::test]
async fn the_files_are_what_the_jetstream_api_accepts() {
    let nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    for (name, file) in STREAMS {
        let created = api(&client, format!("$JS.API.STREAM.CREATE.{name}"), file.as_bytes().to_vec()).await;
        let written: Value = serde_json::from_str(file).unwrap();
        for key in ["name", "subjects", "retention", "storage", "max_age", "max_msg_size", "duplicate_window"] {
            assert_eq!(created["config"][key], written[key], "{name}.{key} as stored by the server");
        }
    }
    for (stream, durable, file) in CONSUMERS {
        let config: Value = serde_json::from_str(file).unwrap();
        let body = serde_json::to_vec(&json!({"stream_name": stream, "config": config})).unwrap();
        let created = api(&client, format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}"), body).await;
        for key in ["durable_name", "ack_policy", "ack_wait", "max_deliver", "filter_subject"] {
            assert_eq!(created["config"][key], config[key], "{stream}/{durable}.{key} as stored by the server");
        }
    }
}

#[tokio::test]
async fn services_create_the_same_objects_and_can_do_it_again() {
    let nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for _ in 0..2 {
        for (name, _) in STREAMS {
            let mut stream = ensure_stream(&js, name).await.unwrap();
            let expected = if name.starts_with("TRAWL_") && *name != "TRAWL_DEAD" {
                async_nats::jetstream::stream::RetentionPolicy::WorkQueue
            } else {
                async_nats::jetstream::stream::RetentionPolicy::Limits
            };
            assert_eq!(stream.info().await.unwrap().config.retention, expected, "{name}");
        }
        for (stream, durable, _) in CONSUMERS {
            ensure_consumer(&js, stream, durable).await.unwrap();
        }
    }
    // The bucket files make buckets the KV and object-store APIs recognise.
    let images = js.get_key_value("TRAWL_IMAGES").await.unwrap();
    images.put("sha256.ab", "{}".into()).await.unwrap();
    assert_eq!(images.get("sha256.ab").await.unwrap().as_deref(), Some(&b"{}"[..]));
    let reports = js.get_object_store("TRAWL_LARGE_REPORTS").await.unwrap();
    reports.put("sha256.ab", &mut &b"report"[..]).await.unwrap();
    // Each lane is captured; a subject outside the lanes is not.
    js.publish("trawl.tasks.high", "t".into()).await.unwrap().await.unwrap();
    js.publish("trawl.tasks.bulk", "t".into()).await.unwrap().await.unwrap();
    assert!(js.publish("trawl.tasks.other", "t".into()).await.unwrap().await.is_err());
    let mut tasks = js.get_stream("TRAWL_TASKS").await.unwrap();
    assert_eq!(tasks.info().await.unwrap().state.messages, 2);
}
