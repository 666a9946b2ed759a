//! `vexil.v1.EvaluationService`: the hot path. Decode, evaluate from the
//! cache, encode: no `.await`, no store access, no per-request logging.

use std::pin::Pin;
use std::time::Instant;

use chrono::Utc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{reason, watch_item_to_pb};
use super::pb;
use crate::domain::EvalContext;
use crate::service::{Evaluator, Watcher};

pub struct EvaluationGrpc {
    evaluator: Evaluator,
    watcher: Watcher,
}

impl EvaluationGrpc {
    pub fn new(evaluator: Evaluator, watcher: Watcher) -> Self {
        Self { evaluator, watcher }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::evaluation_service_server::EvaluationService for EvaluationGrpc {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let pb::WatchRequest {
            flag_names,
            since_revision,
        } = request.into_inner();
        let items = self.watcher.watch(flag_names, since_revision).await?;
        Ok(Response::new(Box::pin(
            ReceiverStream::new(items).map(watch_item_to_pb),
        )))
    }

    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let started = Instant::now();
        let pb::EvaluateRequest {
            flag_name,
            user_id,
            environment,
        } = request.into_inner();
        let ctx = EvalContext {
            user_id: &user_id,
            environment: &environment,
        };
        let result = self.evaluator.evaluate(&flag_name, &ctx, Utc::now())?;
        Ok(Response::new(pb::EvaluateResponse {
            flag_name,
            enabled: result.evaluation.enabled,
            reason: reason(result.evaluation.reason) as i32,
            revision: result.revision,
            evaluation_time_ms: started.elapsed().as_secs_f64() * 1e3,
        }))
    }

    async fn bulk_evaluate(
        &self,
        request: Request<pb::BulkEvaluateRequest>,
    ) -> Result<Response<pb::BulkEvaluateResponse>, Status> {
        let started = Instant::now();
        let pb::BulkEvaluateRequest {
            flag_names,
            user_id,
            environment,
        } = request.into_inner();
        let ctx = EvalContext {
            user_id: &user_id,
            environment: &environment,
        };
        let results = self
            .evaluator
            .bulk_evaluate(flag_names, &ctx, Utc::now())?
            .into_iter()
            .map(|(flag_name, result)| pb::FlagEvaluation {
                flag_name,
                enabled: result.evaluation.enabled,
                reason: reason(result.evaluation.reason) as i32,
                revision: result.revision,
            })
            .collect();
        Ok(Response::new(pb::BulkEvaluateResponse {
            results,
            evaluation_time_ms: started.elapsed().as_secs_f64() * 1e3,
        }))
    }
}
