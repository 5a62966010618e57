"""POST /v1/feedback: "Was this result right?" from the public page, stored without personal data."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.routes.common import PROBLEM_RESPONSES, RATE_LIMITED, runtime
from app.schemas import FeedbackIn, FeedbackOut
from app.store.feedback import FeedbackEntry, SqlFeedback

router = APIRouter(tags=["verification"])

# A comment of 500 characters, each up to 4 bytes in UTF-8 and maybe escaped, plus the other fields.
MAX_FEEDBACK_BYTES = 4096


@router.post(
    "/v1/feedback",
    summary="Say whether a verify result was right",
    description="Stores only the fields of the body and the UTC day it arrived: no address, no user agent, "
    "no file. Rate limited per client address like /v1/verify (HALLMARK_PUBLIC_RATE_LIMIT); the address "
    "is held in memory for that only. "
    f"The body is limited to {MAX_FEEDBACK_BYTES} bytes.",
    status_code=201,
    response_model=FeedbackOut,
    responses={
        **{
            status: {**PROBLEM_RESPONSES[status], "description": text}
            for status, text in (
                (400, "The body is not well-formed JSON"),
                (413, f"Body larger than {MAX_FEEDBACK_BYTES} bytes"),
                (422, "Not valid feedback (unknown outcome, comment over 500 characters, unknown field)"),
                (503, "The database cannot store it now; see Retry-After"),
            )
        },
        **RATE_LIMITED,
    },
)
def post_feedback(request: Request, body: FeedbackIn) -> FeedbackOut:
    rt = runtime(request)
    comment = (body.comment or "").strip() or None
    entry = FeedbackEntry(
        day=rt.clock.now().date(),
        outcome=body.outcome,
        verdict_correct=body.verdict_correct,
        manifest_id=body.manifest_id or None,
        comment=comment,
    )
    SqlFeedback(rt.db).record(entry)
    return FeedbackOut(
        day=entry.day.isoformat(),
        outcome=body.outcome,
        verdict_correct=entry.verdict_correct,
        manifest_id=entry.manifest_id,
        comment=entry.comment,
    )
