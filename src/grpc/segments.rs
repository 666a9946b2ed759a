//! The segment calls of `vexil.v1.FlagService` (the service's trait is
//! implemented in `flags.rs`, which hands these over).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::access::GrpcAdmission;
use super::convert::{segment_from_pb, segment_to_pb};
use super::pb;
use crate::admission::Gatekeeper;
use crate::auth::Role;
use crate::domain::Change;
use crate::error::Error;
use crate::service::SegmentManager;

pub struct SegmentCalls {
    pub manager: SegmentManager,
    pub gate: Arc<Gatekeeper>,
}

impl SegmentCalls {
    pub async fn create(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Editor, "CreateSegment")?;
        let pb::CreateSegmentRequest { segment, reason } = request.into_inner();
        let segment = segment.ok_or_else(|| Error::invalid("segment", "is required"))?;
        let (name, spec) = segment_from_pb(segment)?;
        let change = Change {
            actor: caller.actor.clone(),
            reason,
        };
        let segment = self
            .manager
            .create_segment(name, spec, change, caller.principal.as_ref())
            .await?;
        Ok(Response::new(segment_to_pb(&segment)))
    }

    pub async fn get(
        &self,
        request: Request<pb::GetSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "GetSegment")?;
        let pb::GetSegmentRequest { name } = request.into_inner();
        let segment = self.manager.get_segment(&name).await?;
        Ok(Response::new(segment_to_pb(&segment)))
    }

    pub async fn list(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "ListSegments")?;
        let pb::ListSegmentsRequest {} = request.into_inner();
        let segments = self.manager.list_segments();
        Ok(Response::new(pb::ListSegmentsResponse {
            segments: segments
                .iter()
                .map(|segment| segment_to_pb(segment))
                .collect(),
        }))
    }

    pub async fn update(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Editor, "UpdateSegment")?;
        let pb::UpdateSegmentRequest {
            segment,
            reason,
            expected_revision,
        } = request.into_inner();
        let segment = segment.ok_or_else(|| Error::invalid("segment", "is required"))?;
        let (name, spec) = segment_from_pb(segment)?;
        let change = Change {
            actor: caller.actor.clone(),
            reason,
        };
        let segment = self
            .manager
            .update_segment(
                name,
                spec,
                change,
                expected_revision,
                caller.principal.as_ref(),
            )
            .await?;
        Ok(Response::new(segment_to_pb(&segment)))
    }

    pub async fn delete(
        &self,
        request: Request<pb::DeleteSegmentRequest>,
    ) -> Result<Response<pb::DeleteSegmentResponse>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Editor, "DeleteSegment")?;
        let pb::DeleteSegmentRequest {
            name,
            reason,
            expected_revision,
        } = request.into_inner();
        let change = Change {
            actor: caller.actor.clone(),
            reason,
        };
        let revision = self
            .manager
            .delete_segment(&name, change, expected_revision, caller.principal.as_ref())
            .await?;
        Ok(Response::new(pb::DeleteSegmentResponse { revision }))
    }
}
