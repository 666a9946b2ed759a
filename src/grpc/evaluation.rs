//! `vexil.v1.EvaluationService`: the hot path. Decode, evaluate from the
//! cache, encode: no `.await`, no store access, no per-request logging.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::Utc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::access::GrpcAdmission;
use super::convert::{
    answer_to_pb, context_of, reason, watch_item_to_older_engine_wire, watch_item_to_redacted_wire,
    watch_item_to_wire,
};
use super::evaluation_server::evaluation_service_server::EvaluationService;
use super::pb;
use super::watch_route::{Encoded, WatchStream};
use crate::admission::{Gatekeeper, StreamKind, Visibility, WatchSlot};
use crate::domain::{EvalContext, NoCatalog};
use crate::service::{Evaluator, WatchItem, Watcher};

pub struct EvaluationGrpc {
    evaluator: Evaluator,
    watcher: Watcher,
    gate: Arc<Gatekeeper>,
}

impl EvaluationGrpc {
    pub fn new(evaluator: Evaluator, watcher: Watcher, gate: Arc<Gatekeeper>) -> Self {
        Self {
            evaluator,
            watcher,
            gate,
        }
    }
}

/// A Watch stream that holds its place among the open streams and, when a
/// token admitted it, ends with UNAUTHENTICATED when the token expires.
struct Guarded<S> {
    inner: S,
    expiry: Option<Pin<Box<tokio::time::Sleep>>>,
    ended: bool,
    _slot: WatchSlot,
}

impl<S: Stream<Item = Result<Encoded, Status>> + Unpin> Stream for Guarded<S> {
    type Item = Result<Encoded, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(expiry) = self.expiry.as_mut()
            && expiry.as_mut().poll(cx).is_ready()
        {
            self.ended = true;
            return Poll::Ready(Some(Err(Status::unauthenticated(
                "the token expired; reconnect with a fresh one (resume with since_revision)",
            ))));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl EvaluationGrpc {
    /// Watch (served by `watch_route`, below tonic's encoder).
    pub async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<WatchStream, Status> {
        let admitted = self
            .gate
            .admit_stream(&request, StreamKind::Definitions, "Watch")?;
        let pb::WatchRequest {
            flag_names,
            since_revision,
            engine,
        } = request.into_inner();
        let items = self.watcher.watch(flag_names, since_revision).await?;
        let expiry = admitted
            .expires_in
            .map(|left| Box::pin(tokio::time::sleep(left)));
        let redacted = admitted.visibility == Visibility::Redacted;
        let to_wire: Box<dyn Fn(WatchItem) -> Result<Encoded, Status> + Send> =
            match (engine >= crate::engine::ENGINE, redacted) {
                (true, false) => Box::new(watch_item_to_wire),
                (true, true) => Box::new(watch_item_to_redacted_wire),
                (false, _) => {
                    Box::new(move |item| watch_item_to_older_engine_wire(item, engine, redacted))
                }
            };
        Ok(Box::pin(Guarded {
            inner: items.map(to_wire),
            expiry,
            ended: false,
            _slot: admitted.slot,
        }))
    }
}

#[tonic::async_trait]
impl EvaluationService for EvaluationGrpc {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let started = Instant::now();
        let _admitted = self.gate.admit_evaluation(&request, "Evaluate")?;
        let pb::EvaluateRequest {
            flag_name,
            user_id,
            environment,
            context,
        } = request.into_inner();
        let context = context_of(context)?;
        let ctx = EvalContext {
            user_id: &user_id,
            environment: &environment,
            attributes: &context,
            catalog: &NoCatalog,
        };
        let result = self.evaluator.evaluate(&flag_name, &ctx, Utc::now())?;
        let answer = answer_to_pb(&result);
        Ok(Response::new(pb::EvaluateResponse {
            flag_name,
            enabled: result.evaluation.enabled,
            reason: reason(result.evaluation.reason) as i32,
            revision: result.revision,
            evaluation_time_ms: started.elapsed().as_secs_f64() * 1e3,
            variant: answer.variant,
            value: answer.value,
            r#type: answer.flag_type,
            rule_index: answer.rule_index,
            rule_id: answer.rule_id,
            failed_prerequisite: answer.failed_prerequisite,
        }))
    }

    async fn bulk_evaluate(
        &self,
        request: Request<pb::BulkEvaluateRequest>,
    ) -> Result<Response<pb::BulkEvaluateResponse>, Status> {
        let started = Instant::now();
        let _admitted = self.gate.admit_evaluation(&request, "BulkEvaluate")?;
        let pb::BulkEvaluateRequest {
            flag_names,
            user_id,
            environment,
            context,
        } = request.into_inner();
        let context = context_of(context)?;
        let ctx = EvalContext {
            user_id: &user_id,
            environment: &environment,
            attributes: &context,
            catalog: &NoCatalog,
        };
        let results = self
            .evaluator
            .bulk_evaluate(flag_names, &ctx, Utc::now())?
            .into_iter()
            .map(|(flag_name, result)| {
                let answer = answer_to_pb(&result);
                pb::FlagEvaluation {
                    flag_name,
                    enabled: result.evaluation.enabled,
                    reason: reason(result.evaluation.reason) as i32,
                    revision: result.revision,
                    variant: answer.variant,
                    value: answer.value,
                    r#type: answer.flag_type,
                    rule_index: answer.rule_index,
                    rule_id: answer.rule_id,
                    failed_prerequisite: answer.failed_prerequisite,
                }
            })
            .collect();
        Ok(Response::new(pb::BulkEvaluateResponse {
            results,
            evaluation_time_ms: started.elapsed().as_secs_f64() * 1e3,
        }))
    }
}
