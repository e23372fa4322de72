"""An independent NATS client replaying a scan task, as docs/nats.md tells
operators to: take the task off the high lane, decode it as documented
(MessagePack, per its Content-Type header), and publish it again by hand as
JSON under a fresh Nats-Msg-Id. Prints the decoded task as JSON.

usage: replay_task.py NATS_URL
"""

import asyncio
import json
import sys
import uuid

import msgpack
import nats


async def main(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind("scanners-high", stream="TRAWL_TASKS")
    [msg] = await sub.fetch(1, timeout=10)
    content_type = (msg.headers or {}).get("Content-Type", "")
    if content_type.startswith("application/msgpack"):
        task = msgpack.unpackb(msg.data)
    else:
        task = json.loads(msg.data)
    await msg.ack_sync()
    task["reason"] = "replayed by nats-py"
    await js.publish(
        "trawl.tasks.high",
        json.dumps(task).encode(),
        headers={"Content-Type": "application/json", "Nats-Msg-Id": f"replay-{uuid.uuid4()}"},
    )
    print(json.dumps(task))
    await nc.drain()


asyncio.run(main(sys.argv[1]))
