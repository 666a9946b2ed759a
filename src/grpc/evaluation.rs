//! `vexil.v1.EvaluationService`: the hot path. Decode, evaluate from the
//! cache, encode: no `.await`, no store access, no per-request logging.

use std::time::Instant;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::convert::reason;
use super::pb;
use crate::domain::EvalContext;
use crate::service::Evaluator;

pub struct EvaluationGrpc {
    evaluator: Evaluator,
}

impl EvaluationGrpc {
    pub fn new(evaluator: Evaluator) -> Self {
        Self { evaluator }
    }
}

#[tonic::async_trait]
impl pb::evaluation_service_server::EvaluationService for EvaluationGrpc {
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
