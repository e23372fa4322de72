//! Tasks through a real nats-server with the `nats/` definitions: the
//! `Nats-Msg-Id` collapses a duplicate, each lane's consumer receives its
//! lane only, and the Content-Type header travels with the task.

use futures::StreamExt;
use std::time::Duration;
use trawl_protocol::definitions::{ensure_consumer, ensure_stream};
use trawl_protocol::task::{CONTENT_TYPE_JSON, CONTENT_TYPE_MSGPACK};
use trawl_protocol::{Lane, ScanTask, TASKS_STREAM};
use trawl_testkit::NatsServer;

async fn publish(js: &async_nats::jetstream::Context, task: &ScanTask) -> bool {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", task.msg_id().as_str());
    headers.insert("Content-Type", CONTENT_TYPE_MSGPACK);
    let ack = js
        .publish_with_headers(task.lane.subject(), headers, task.encode().unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    !ack.duplicate
}

#[tokio::test]
async fn duplicates_collapse_and_lanes_stay_apart() {
    let nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    ensure_stream(&js, TASKS_STREAM).await.unwrap();
    let sweep = ScanTask::new("local", "r.example/app:1", Some("sha256:aa"), Lane::Bulk, "sweep");
    let again = ScanTask::new("local", "r.example/app:latest", Some("sha256:aa"), Lane::Bulk, "sweep");
    let urgent = ScanTask::new("local", "r.example/web:2", Some("sha256:bb"), Lane::High, "on-demand");
    assert!(publish(&js, &sweep).await);
    assert!(!publish(&js, &again).await, "the same digest again is a duplicate");
    assert!(publish(&js, &urgent).await);
    // A hand-written JSON task, as `nats pub` would send it.
    let json = serde_json::to_vec(&ScanTask::new("local", "r.example/db:3", None, Lane::High, "on-demand")).unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", CONTENT_TYPE_JSON);
    js.publish_with_headers(Lane::High.subject(), headers, json.into()).await.unwrap().await.unwrap();

    let mut received = Vec::new();
    for lane in Lane::ALL {
        let consumer = ensure_consumer(&js, TASKS_STREAM, lane.consumer()).await.unwrap();
        let mut batch = consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await.unwrap();
        while let Some(msg) = batch.next().await {
            let msg = msg.unwrap();
            let content_type = msg.headers.as_ref().and_then(|h| h.get("Content-Type")).map(|v| v.as_str().to_string());
            let task = ScanTask::decode(&msg.payload, content_type.as_deref()).unwrap();
            assert_eq!(task.lane, lane, "a lane's consumer sees only its lane");
            received.push(task.reference);
            msg.ack().await.unwrap();
        }
    }
    assert_eq!(received, ["r.example/web:2", "r.example/db:3", "r.example/app:1"]);
}
