"""Realistic input data."""

from __future__ import annotations

from typing import Any

from services.partner.domain.uscc import make_uscc


def uscc(n: int, region: str = "350100") -> str:
    """The n-th valid unified social credit code (企业, 工商登记)."""
    return make_uscc(f"91{region}{n:09d}")


def registration(n: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"福州云栈信息技术有限公司{n}",
        "unified_social_credit_code": uscc(n),
        "contact": {"name": "林晓", "email": f"lin{n}@yunzhan.example", "phone": "13800138000"},
        "service_categories": ["运维外包", "软件开发"],
    }
    body.update(overrides)
    return body
