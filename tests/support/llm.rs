//! Local stand-ins for the model APIs the coding-agent CLIs call, so their real binaries run a
//! one-shot prompt end to end without any real service:
//!
//! - Anthropic Messages (`POST /v1/messages`, streamed as SSE when asked): Claude Code, pi,
//!   OpenCode;
//! - OpenAI Responses (`POST /v1/responses`, SSE): Codex;
//! - OpenAI Chat Completions (`POST /v1/chat/completions`, SSE): OpenCode's and pi's
//!   OpenAI-compatible providers;
//! - Gemini `generateContent` and `streamGenerateContent?alt=sse`: Gemini CLI (whose first call
//!   is a routing classifier that wants JSON filling its `responseJsonSchema`).
//!
//! Every answer's text is [`REPLY`]; every request is recorded (method, path, the API key
//! header it carried) for the test to check. Served over HTTPS with a test CA of its own (the
//! names given) and over plain HTTP, both on 127.0.0.1.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::{Request, Response, body::Frame, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::upstream::test_server_config;

/// What every stand-in answer says.
pub const REPLY: &str = "STANDIN-REPLY-42";

/// One request a stand-in saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// `x-api-key`, `authorization` or `x-goog-api-key`, whichever the request carried.
    pub key: Option<String>,
    pub host: Option<String>,
    /// The request body as text (what the CLI sent the model: its instructions among it).
    pub body: String,
}

/// The running stand-ins.
pub struct LlmStandIn {
    pub tls_port: u16,
    pub http_port: u16,
    pub ca_pem: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Pause between streamed events (time to first token vs the rest).
    pub event_gap: Duration,
}

impl LlmStandIn {
    /// Starts both listeners on their own thread; the TLS leaf names every one of `names`.
    pub fn start(names: &[&str], event_gap: Duration) -> LlmStandIn {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let (config, ca_pem) = test_server_config(&names, &[b"http/1.1"]);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ports_tx, ports_rx) = std::sync::mpsc::channel();
        let recorder = Arc::clone(&seen);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
                ports_tx
                    .send((
                        tls.local_addr().unwrap().port(),
                        plain.local_addr().unwrap().port(),
                    ))
                    .unwrap();
                let plain_recorder = Arc::clone(&recorder);
                tokio::spawn(async move {
                    loop {
                        let Ok((stream, _)) = plain.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve(stream, Arc::clone(&plain_recorder), event_gap));
                    }
                });
                loop {
                    let Ok((stream, _)) = tls.accept().await else {
                        continue;
                    };
                    let (acceptor, recorder) = (acceptor.clone(), Arc::clone(&recorder));
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve(stream, recorder, event_gap).await;
                        }
                    });
                }
            });
        });
        let (tls_port, http_port) = ports_rx.recv().unwrap();
        LlmStandIn {
            tls_port,
            http_port,
            ca_pem,
            seen,
            event_gap,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn serve<S>(stream: S, seen: Arc<Mutex<Vec<Seen>>>, gap: Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let seen = Arc::clone(&seen);
        async move { Ok::<_, Infallible>(answer(request, &seen, gap).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    seen: &Mutex<Vec<Seen>>,
    gap: Duration,
) -> Response<Body> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let key = header("x-api-key")
        .or_else(|| header("authorization"))
        .or_else(|| header("x-goog-api-key"));
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let method = request.method().to_string();
    let host = header("host");
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method,
        path: path.clone(),
        key,
        host,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let route = path.split('?').next().unwrap_or("");
    if route.ends_with("/messages") {
        anthropic(&body, gap)
    } else if route.ends_with("/responses") {
        openai_responses(&body, gap)
    } else if route.ends_with("/chat/completions") {
        openai_chat(&body, gap)
    } else if route.contains(":streamGenerateContent") {
        sse(vec![(None, gemini_chunk(&body))], gap)
    } else if route.contains(":generateContent") {
        json_response(&gemini_chunk(&body))
    } else if route.ends_with("/count_tokens") {
        json_response(&json!({"input_tokens": 1}))
    } else {
        let mut response = Response::new(full(Bytes::from_static(b"{}")));
        *response.status_mut() = hyper::StatusCode::NOT_FOUND;
        response
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).boxed()
}

fn json_response(value: &Value) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(full(Bytes::from(value.to_string())))
        .unwrap()
}

/// An SSE response of `(event name, data)` pairs, one every `gap`.
fn sse(events: Vec<(Option<String>, Value)>, gap: Duration) -> Response<Body> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        for (index, (name, data)) in events.into_iter().enumerate() {
            if index > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            let mut text = String::new();
            if let Some(name) = name {
                text.push_str(&format!("event: {name}\n"));
            }
            text.push_str(&format!("data: {data}\n\n"));
            if sender
                .send(Ok(Frame::data(Bytes::from(text))))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let stream = tokio_stream_from(receiver);
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

/// A receiver as the `Stream` [`StreamBody`] wants.
fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// An SSE event name.
fn named(name: &str) -> Option<String> {
    Some(name.to_owned())
}

/// The marker that makes the Anthropic stand-in ask to run a shell command: a prompt saying
/// `RUN-TOOL: CMD` gets a `tool_use` of the `Bash` tool with CMD, until a tool result comes
/// back (which the test then reads from [`LlmStandIn::seen`]).
pub const RUN_TOOL: &str = "RUN-TOOL: ";

/// The command a request's prompt asks the stand-in to run, when it has no tool result yet.
fn tool_wanted(request: &Value) -> Option<String> {
    let text = request["messages"].to_string();
    if text.contains("\"tool_result\"") {
        return None;
    }
    let start = text.find(RUN_TOOL)? + RUN_TOOL.len();
    let command: String = text[start..]
        .chars()
        .take_while(|c| *c != '"' && *c != '\\')
        .collect();
    Some(command)
}

fn anthropic(request: &Value, gap: Duration) -> Response<Body> {
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-standin")
        .to_owned();
    if let Some(command) = tool_wanted(request)
        && request["stream"].as_bool() == Some(true)
    {
        let input = json!({"command": command, "description": "run what was asked"}).to_string();
        return sse(
            message_events(
                &model,
                json!({"type": "tool_use", "id": "toolu_standin", "name": "Bash", "input": {}}),
                json!({"type": "input_json_delta", "partial_json": input}),
                "tool_use",
            ),
            gap,
        );
    }
    if request["stream"].as_bool() != Some(true) {
        return json_response(&json!({
            "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": REPLY}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 5},
        }));
    }
    sse(
        message_events(
            &model,
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": REPLY}),
            "end_turn",
        ),
        gap,
    )
}

/// A streamed Messages answer of one content block (`block` started, `delta` added), ending
/// for `stop_reason`.
fn message_events(
    model: &str,
    block: Value,
    delta: Value,
    stop_reason: &str,
) -> Vec<(Option<String>, Value)> {
    vec![
        (
            named("message_start"),
            json!({"type": "message_start", "message": {
            "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 1}}}),
        ),
        (
            named("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": block}),
        ),
        (
            named("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ),
        (
            named("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            named("message_delta"),
            json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": 5}}),
        ),
        (named("message_stop"), json!({"type": "message_stop"})),
    ]
}

fn openai_responses(request: &Value, gap: Duration) -> Response<Body> {
    let model = request["model"]
        .as_str()
        .unwrap_or("gpt-standin")
        .to_owned();
    let response = json!({"id": "resp_standin", "object": "response", "created_at": 1,
        "status": "in_progress", "model": model, "output": []});
    let done_item = json!({"id": "msg_standin", "type": "message", "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": REPLY, "annotations": []}]});
    let mut completed = response.clone();
    completed["status"] = json!("completed");
    completed["output"] = json!([done_item.clone()]);
    completed["usage"] = json!({"input_tokens": 1, "output_tokens": 5, "total_tokens": 6,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0}});
    // Responses events are named by their own `type`.
    let event = |value: Value| (value["type"].as_str().map(str::to_owned), value);
    sse(
        vec![
            event(json!({"type": "response.created", "response": response})),
            event(
                json!({"type": "response.output_item.added", "output_index": 0, "item": {
                "id": "msg_standin", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}}),
            ),
            event(
                json!({"type": "response.content_part.added", "item_id": "msg_standin",
                "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}}),
            ),
            event(
                json!({"type": "response.output_text.delta", "item_id": "msg_standin",
                "output_index": 0, "content_index": 0, "delta": REPLY}),
            ),
            event(
                json!({"type": "response.output_text.done", "item_id": "msg_standin",
                "output_index": 0, "content_index": 0, "text": REPLY}),
            ),
            event(
                json!({"type": "response.output_item.done", "output_index": 0,
                "item": done_item}),
            ),
            event(json!({"type": "response.completed", "response": completed})),
        ],
        gap,
    )
}

/// OpenAI Chat Completions, streamed (OpenCode's and pi's OpenAI-compatible providers): the
/// reply, then a `finish_reason` (without one OpenCode asks again, forever), then the usage.
fn openai_chat(request: &Value, gap: Duration) -> Response<Body> {
    let model = request["model"]
        .as_str()
        .unwrap_or("chat-standin")
        .to_owned();
    let chunk = |delta: Value, finish: Value| {
        (
            None,
            json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    sse(
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": REPLY}), Value::Null),
            chunk(json!({}), json!("stop")),
            (
                None,
                json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1,
                    "model": model, "choices": [],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}}),
            ),
        ],
        gap,
    )
}

/// One Gemini candidate: [`REPLY`], or (for a request that asks for JSON, like Gemini CLI's
/// routing classifier) a JSON text that fills the request's schema.
fn gemini_chunk(request: &Value) -> Value {
    let config = &request["generationConfig"];
    let text = if config["responseMimeType"] == "application/json" {
        let schema = if config["responseJsonSchema"].is_null() {
            &config["responseSchema"]
        } else {
            &config["responseJsonSchema"]
        };
        fill_schema(schema).to_string()
    } else {
        REPLY.to_owned()
    };
    json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 5, "totalTokenCount": 6},
        "modelVersion": "gemini-standin",
    })
}

/// A value of the shape a (Gemini-style, upper-case types) JSON schema asks for.
fn fill_schema(schema: &Value) -> Value {
    let kind = schema["type"]
        .as_str()
        .unwrap_or("STRING")
        .to_ascii_uppercase();
    match kind.as_str() {
        "OBJECT" => Value::Object(
            schema["properties"]
                .as_object()
                .map(|properties| {
                    properties
                        .iter()
                        .map(|(key, inner)| (key.clone(), fill_schema(inner)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "INTEGER" | "NUMBER" => json!(10),
        "BOOLEAN" => json!(false),
        "ARRAY" => json!([]),
        _ => json!("standin"),
    }
}
