use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};

use super::*;
use crate::body::box_body;

fn chunks(parts: &[&'static str]) -> BoxBody {
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
        .iter()
        .map(|part| Ok(Frame::data(Bytes::from_static(part.as_bytes()))))
        .collect();
    box_body(StreamBody::new(futures_util::stream::iter(frames)))
}

async fn collect(body: ReplayBody) -> Result<Bytes, BoxError> {
    Ok(body.collect().await?.to_bytes())
}

#[tokio::test]
async fn a_body_within_the_limit_replays_in_full() {
    let first = ReplayBody::new(chunks(&["hello ", "world"]), 64);
    let second = first.replay();
    assert_eq!(collect(first).await.unwrap(), "hello world");
    assert!(second.is_replayable());
    assert_eq!(collect(second).await.unwrap(), "hello world");
}

#[tokio::test]
async fn a_retry_before_the_first_attempt_finished_reads_on_from_the_source() {
    let mut first = ReplayBody::new(chunks(&["a", "b", "c"]), 64);
    let frame = first.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "a");
    drop(first.replay());
    let second = first.replay();
    drop(first);
    assert_eq!(collect(second).await.unwrap(), "abc");
}

#[tokio::test]
async fn a_body_over_the_limit_passes_through_once_and_is_not_replayable() {
    let first = ReplayBody::new(chunks(&["12345", "67890"]), 6);
    let second = first.replay();
    assert_eq!(collect(first).await.unwrap(), "1234567890");
    assert!(!second.is_replayable());
    assert!(collect(second).await.is_err());
}

#[tokio::test]
async fn an_empty_body_is_replayable_and_ends_at_once() {
    let first = ReplayBody::new(box_body(Full::new(Bytes::new())), 0);
    assert!(first.is_replayable());
    assert_eq!(collect(first.replay()).await.unwrap(), "");
}

#[tokio::test]
async fn trailers_are_replayed() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-check", http::HeaderValue::from_static("1"));
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"x"))),
        Ok(Frame::trailers(trailers.clone())),
    ];
    let first = ReplayBody::new(
        box_body(StreamBody::new(futures_util::stream::iter(frames))),
        16,
    );
    let second = first.replay();
    let collected = first.collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers));
    let collected = second.collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers));
}

#[tokio::test]
async fn a_cursor_ends_with_its_last_data_frame_and_tells_its_length() {
    let mut first = ReplayBody::new(box_body(Full::new(Bytes::from_static(b"hi"))), 64);
    assert_eq!(first.size_hint().exact(), Some(2));
    let frame = first.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "hi");
    assert!(
        first.is_end_stream(),
        "known at the last frame, so no empty DATA frame follows it"
    );

    let mut second = first.replay();
    assert_eq!(second.size_hint().exact(), Some(2));
    assert!(!second.is_end_stream());
    second.frame().await.unwrap().unwrap();
    assert!(second.is_end_stream());
}

#[tokio::test]
async fn a_cursor_behind_a_capped_record_is_not_an_empty_body() {
    let first = ReplayBody::new(chunks(&["12345", "67890"]), 6);
    let second = first.replay();
    assert_eq!(collect(first).await.unwrap(), "1234567890");
    assert!(
        !second.is_end_stream(),
        "it would be sent as an empty request"
    );
    assert_eq!(second.size_hint().exact(), None);
}
