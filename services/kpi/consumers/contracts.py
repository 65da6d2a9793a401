"""The parts of other services' event payloads this service reads.

Tolerant readers: only the fields used, extra fields ignored, so producers can
add optional fields freely. A contract test holds each model against the
producer's published JSON Schema in docs/events/.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class PartnerRegisteredV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    unified_social_credit_code: str = Field(min_length=18, max_length=18)


class PartnerQualifiedV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: str


class PartnerActivatedV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: str


class PartnerStatusChangedV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    to_status: str


#: (producer service, event type, schema version) -> the model read here.
CONTRACTS: dict[tuple[str, str, int], type[BaseModel]] = {
    ("partner", "PartnerRegistered", 1): PartnerRegisteredV1,
    ("partner", "PartnerQualified", 1): PartnerQualifiedV1,
    ("partner", "PartnerActivated", 1): PartnerActivatedV1,
    ("partner", "PartnerStatusChanged", 1): PartnerStatusChangedV1,
}


# -- what the KPI facts read (services/kpi/facts.py) -------------------------------


class _Reader(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MilestoneV1(_Reader):
    milestone_id: str = Field(min_length=1)
    due_on: date


class ProjectCreatedV1(_Reader):
    partner_id: UUID
    title: str
    project_manager: str
    budget: Decimal
    specialists: list[str] = []
    milestones: list[MilestoneV1] = []


class BudgetChangedV1(_Reader):
    new_budget: Decimal
    decision_id: UUID | None = None


class ProcurementApprovalGrantedV1(_Reader):
    approved_amount: Decimal


class CostRecordedV1(_Reader):
    cost_id: str
    amount: Decimal
    category: str
    incurred_on: date


class ContractSignedV1(_Reader):
    contract_number: str
    value: Decimal
    signed_on: date
    kickoff_due_at: AwareDatetime


class KickoffHeldV1(_Reader):
    held_on: date
    late: bool
    due_at: AwareDatetime


class KickoffOverdueV1(_Reader):
    due_at: AwareDatetime


class MilestoneDeliveredV1(_Reader):
    milestone_id: str
    delivered_on: date
    due_on: date
    on_time: bool


class MilestoneRefV1(_Reader):
    milestone_id: str


class ComplaintReceivedV1(_Reader):
    complaint_id: str
    received_at: AwareDatetime
    severity: str
    source: str


class ComplaintReceivedV2(ComplaintReceivedV1):
    channel: str


class ComplaintRefV1(_Reader):
    complaint_id: str


class SatisfactionRecordedV1(_Reader):
    survey_id: str
    score: int = Field(ge=1, le=5)
    respondent: str


class TaskAssignedV1(_Reader):
    task_id: str
    specialist: str
    due_on: date


class TaskAcknowledgedV1(_Reader):
    task_id: str
    specialist: str


class TaskCompletedV1(_Reader):
    task_id: str
    specialist: str
    completed_on: date
    due_on: date
    on_time: bool


class ReviewHeldV1(_Reader):
    quarter: str
    held_on: date


class QuarterlyReviewOverdueV1(_Reader):
    quarter: str
    due_at: AwareDatetime


class ProjectClosedV1(_Reader):
    outcome: str
    budget: Decimal
    costs_total: Decimal


class FinalAcceptanceRecordedV1(_Reader):
    accepted_on: date


class IncidentReportedV1(_Reader):
    incident_id: str
    category: str
    severity: str
    detected_at: AwareDatetime
    late: bool
    report_due_at: AwareDatetime | None = None


class InvestigationOpenedV1(_Reader):
    investigation_id: str
    incident_id: str


class SanctionV1(_Reader):
    subject: str
    subject_kind: str
    level: str


class InvestigationConcludedV1(_Reader):
    investigation_id: str
    sanctions: list[SanctionV1] = []


class ApprovalRequestedV1(_Reader):
    kind: str
    project_id: UUID | None = None
    partner_id: UUID | None = None
    requested_by: str
    title: str


class ApprovalStepOpenedV1(_Reader):
    step: str
    round: int
    due_at: AwareDatetime
    assignee: str | None = None


class ApprovalStepApprovedV1(_Reader):
    step: str
    round: int
    approver: str
    opened_at: AwareDatetime
    decided_at: AwareDatetime
    on_time: bool


class ApprovalReturnedV1(_Reader):
    step: str
    round: int
    returned_by: str
    opened_at: AwareDatetime
    returned_at: AwareDatetime
    on_time: bool


class ApprovalStepOverdueV1(_Reader):
    step: str
    round: int
    due_at: AwareDatetime


class ProcurementRejectedV1(_Reader):
    step: str
    rejected_by: str
    rejected_at: AwareDatetime


class DirectorDecisionRejectedV1(_Reader):
    decided_at: AwareDatetime


class EmergencyActionRecordedV1(_Reader):
    project_id: UUID | None = None
    recorded_by: str
    acted_at: AwareDatetime
    explanation_due_at: AwareDatetime


class EmergencyExplanationFiledV1(_Reader):
    filed_at: AwareDatetime
    on_time: bool


class EmergencyExplanationOverdueV1(_Reader):
    due_at: AwareDatetime


class MeetingHeldV1(_Reader):
    kind: str
    project_id: UUID | None = None
    chaired_by: str
    held_at: AwareDatetime
    minutes_due_at: AwareDatetime


class MinutesFiledV1(_Reader):
    filed_at: AwareDatetime
    on_time: bool


class MinutesOverdueV1(_Reader):
    due_at: AwareDatetime


class ResolutionRecordedV1(_Reader):
    resolution_id: str
    project_id: UUID | None = None
    owner_due_at: AwareDatetime


class ResolutionAssignedV1(_Reader):
    resolution_id: str
    project_id: UUID | None = None
    assignment: int
    owner: str
    assigned_at: AwareDatetime
    deadline: AwareDatetime
    on_time: bool


class ResolutionOwnerOverdueV1(_Reader):
    resolution_id: str
    project_id: UUID | None = None
    due_at: AwareDatetime


class ResolutionCompletedV1(_Reader):
    resolution_id: str
    project_id: UUID | None = None
    assignment: int
    owner: str
    completed_at: AwareDatetime
    on_time: bool


class ResolutionOverdueV1(_Reader):
    resolution_id: str
    project_id: UUID | None = None
    assignment: int
    owner: str
    deadline: AwareDatetime


class ReportPeriodOpenedV1(_Reader):
    project_id: UUID
    kind: str
    period: str
    due_at: AwareDatetime
    project_manager: str


class ReportFiledV1(_Reader):
    project_id: UUID
    kind: str
    period: str
    due_at: AwareDatetime
    filed_at: AwareDatetime
    filed_by: str


class ReportScheduleClosedV1(_Reader):
    project_id: UUID
    closed_at: AwareDatetime


class ReportOverdueV1(_Reader):
    project_id: UUID
    kind: str
    period: str
    due_at: AwareDatetime


class DocumentFiledV1(_Reader):
    doc_type: str
    project_id: UUID | None = None
    filed_by: str
    filed_at: AwareDatetime


class DocumentReviewedV1(_Reader):
    doc_type: str
    project_id: UUID | None = None
    filed_by: str
    outcome: str
    reviewed_at: AwareDatetime
    version: int


class TrainingHeldV1(_Reader):
    training_id: UUID
    held_on: date
    attendees: list[str]
    hours: float


class TrainingYearClosedV1(_Reader):
    user_id: str
    role: str
    year: int
    attended: int
    target: int
    met: bool


class EvaluationOpenedV1(_Reader):
    user_id: str
    kind: str
    superior: str | None = None
    due_at: AwareDatetime


class AssessmentSubmittedV1(_Reader):
    user_id: str
    submitted_at: AwareDatetime
    on_time: bool


class SelfAssessmentOverdueV1(_Reader):
    user_id: str
    due_at: AwareDatetime
    owed_by: str


class SuperiorAssessmentOverdueV1(_Reader):
    user_id: str
    due_at: AwareDatetime
    #: Nobody when the person had no superior to assess them.
    owed_by: str | None = None


CONTRACTS.update(
    {
        ("partner", "ProjectCreated", 1): ProjectCreatedV1,
        ("partner", "BudgetChanged", 1): BudgetChangedV1,
        ("partner", "ProcurementApprovalGranted", 1): ProcurementApprovalGrantedV1,
        ("partner", "CostRecorded", 1): CostRecordedV1,
        ("partner", "ContractSigned", 1): ContractSignedV1,
        ("partner", "KickoffHeld", 1): KickoffHeldV1,
        ("partner", "KickoffOverdue", 1): KickoffOverdueV1,
        ("partner", "MilestoneDelivered", 1): MilestoneDeliveredV1,
        ("partner", "MilestoneRejected", 1): MilestoneRefV1,
        ("partner", "MilestoneAccepted", 1): MilestoneRefV1,
        ("partner", "ComplaintReceived", 1): ComplaintReceivedV1,
        ("partner", "ComplaintReceived", 2): ComplaintReceivedV2,
        ("partner", "ComplaintResponded", 1): ComplaintRefV1,
        ("partner", "ComplaintResolved", 1): ComplaintRefV1,
        ("partner", "SatisfactionRecorded", 1): SatisfactionRecordedV1,
        ("partner", "TaskAssigned", 1): TaskAssignedV1,
        ("partner", "TaskAcknowledged", 1): TaskAcknowledgedV1,
        ("partner", "TaskCompleted", 1): TaskCompletedV1,
        ("partner", "ReviewHeld", 1): ReviewHeldV1,
        ("partner", "QuarterlyReviewOverdue", 1): QuarterlyReviewOverdueV1,
        ("partner", "ProjectClosed", 1): ProjectClosedV1,
        ("partner", "FinalAcceptanceRecorded", 1): FinalAcceptanceRecordedV1,
        ("partner", "IncidentReported", 1): IncidentReportedV1,
        ("partner", "InvestigationOpened", 1): InvestigationOpenedV1,
        ("partner", "InvestigationConcluded", 1): InvestigationConcludedV1,
        ("approval", "ApprovalRequested", 1): ApprovalRequestedV1,
        ("approval", "ApprovalStepOpened", 1): ApprovalStepOpenedV1,
        ("approval", "ApprovalStepApproved", 1): ApprovalStepApprovedV1,
        ("approval", "ApprovalReturned", 1): ApprovalReturnedV1,
        ("approval", "ApprovalStepOverdue", 1): ApprovalStepOverdueV1,
        ("approval", "ProcurementRejected", 1): ProcurementRejectedV1,
        ("approval", "DirectorDecisionRejected", 1): DirectorDecisionRejectedV1,
        ("approval", "EmergencyActionRecorded", 1): EmergencyActionRecordedV1,
        ("approval", "EmergencyExplanationFiled", 1): EmergencyExplanationFiledV1,
        ("approval", "EmergencyExplanationOverdue", 1): EmergencyExplanationOverdueV1,
        ("docs", "MeetingHeld", 1): MeetingHeldV1,
        ("docs", "MinutesFiled", 1): MinutesFiledV1,
        ("docs", "MinutesOverdue", 1): MinutesOverdueV1,
        ("docs", "ResolutionRecorded", 1): ResolutionRecordedV1,
        ("docs", "ResolutionAssigned", 1): ResolutionAssignedV1,
        ("docs", "ResolutionOwnerOverdue", 1): ResolutionOwnerOverdueV1,
        ("docs", "ResolutionCompleted", 1): ResolutionCompletedV1,
        ("docs", "ResolutionOverdue", 1): ResolutionOverdueV1,
        ("docs", "ReportPeriodOpened", 1): ReportPeriodOpenedV1,
        ("docs", "ReportFiled", 1): ReportFiledV1,
        ("docs", "ReportFiledLate", 1): ReportFiledV1,
        ("docs", "ReportOverdue", 1): ReportOverdueV1,
        ("docs", "ReportScheduleClosed", 1): ReportScheduleClosedV1,
        ("docs", "DocumentFiled", 1): DocumentFiledV1,
        ("docs", "DocumentReviewed", 1): DocumentReviewedV1,
        ("kpi", "TrainingHeld", 1): TrainingHeldV1,
        ("kpi", "TrainingYearClosed", 1): TrainingYearClosedV1,
        ("kpi", "EvaluationOpened", 1): EvaluationOpenedV1,
        ("kpi", "SelfAssessmentSubmitted", 1): AssessmentSubmittedV1,
        ("kpi", "SuperiorAssessmentSubmitted", 1): AssessmentSubmittedV1,
        ("kpi", "SelfAssessmentOverdue", 1): SelfAssessmentOverdueV1,
        ("kpi", "SuperiorAssessmentOverdue", 1): SuperiorAssessmentOverdueV1,
    }
)
