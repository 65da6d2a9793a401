"""`partnerledger demo`: a realistic year of activity, loaded through the HTTP APIs.

It talks only HTTP to the running services (the URLs of `load_settings()`,
as `partnerledger status` does), with tokens minted locally from the dev JWT
key, as `partnerledger token` does:

1. the department's staff directory (Director, 3 PMs, 6 specialists, R2.2)
   and a few trainings (R2.3);
2. partners registered, evaluated and qualified or rejected by the Director (R2.1);
3. projects: the three-signature procurement approval through the approval
   service (the saga over Kafka, R3.1), contract, kickoff (R3.2), milestones
   delivered (some late, some rejected and delivered again), tasks, quarterly
   reviews (R3.3), costs, complaints, incidents with a data leak and
   investigations with sanctions (R6.4), satisfaction surveys, Director
   decisions (R5.1, R5.2), final acceptance with the third party (R3.4) and
   closure (R1.2); their contract, minutes and reports filed in the docs
   service under R4.4 names (R4.1-R4.5);
4. weekly department meetings and quarterly strategy meetings with minutes
   and resolutions (R5.4, R5.5), and emergency actions explained after the
   fact (R5.3).

Dates in request bodies are spread over the past twelve months and respect
what each service checks (nothing in the future, a kickoff after the
contract, a delivery after the kickoff, ...). What the APIs stamp with the
current time (a report filed, a complaint answered, a task completed)
happens now, so a filing for a past period counts as late: that is how the
services judge it. The services' deadline engines then catch up with the
year's missed clocks (overdue reports, reviews, kickoffs).

The same seed tells the same story. Every run adds a new batch: names carry a
run tag once the system has data, and every POST carries an Idempotency-Key
of its own, reused when a lost race (409 version-conflict), a 503 or a
dropped connection is retried.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Final, Literal, TypeVar
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from shared.auth import TokenIssuer
from shared.policy import Policy, load_policy
from shared.settings import SERVICE_NAMES, Settings

Json = dict[str, Any]
T = TypeVar("T")
#: httpx's event hooks: {"request": [...], "response": [...]}.
EventHooks = Mapping[str, list[Callable[..., Any]]]

RETRIES: Final = 4  # a lost race, a 503 or a dropped connection, tried again
WAIT_S: Final = 120.0  # how long to wait for an event to travel through Kafka
POLL_S: Final = 0.25

# -- the cast --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    user_id: str
    role: str
    name: str = ""
    partner_id: str | None = None


@dataclass(frozen=True)
class StaffSeed:
    user_id: str
    name: str
    role: str
    superior: str | None
    joined_days_ago: int


STAFF: Final = (
    StaffSeed("director.zhang", "张伟", "director", None, 420),
    StaffSeed("pm.wang", "王芳", "project_manager", "director.zhang", 410),
    StaffSeed("pm.li", "李强", "project_manager", "director.zhang", 410),
    StaffSeed("pm.chen", "陈静", "project_manager", "director.zhang", 405),
    StaffSeed("sp.zhao", "赵磊", "specialist", "pm.wang", 400),
    StaffSeed("sp.qian", "钱敏", "specialist", "pm.wang", 400),
    StaffSeed("sp.sun", "孙浩", "specialist", "pm.li", 395),
    StaffSeed("sp.zhou", "周婷", "specialist", "pm.li", 395),
    StaffSeed("sp.wu", "吴迪", "specialist", "pm.chen", 390),
    StaffSeed("sp.zheng", "郑洁", "specialist", "pm.chen", 150),  # joined mid-year
)
DEPT_HEAD: Final = Person("dh.liu", "dept_head", "刘建国")
FINANCE: Final = Person("fin.huang", "finance", "黄丽")
CEO: Final = Person("ceo.ma", "ceo", "马志远")
AUDITOR: Final = Person("audit.he", "auditor", "何静")

TRAININGS: Final = (
    ("信息安全意识培训", 300, 3.0),
    ("外包合同与供应商管理", 215, 4.0),
    ("ITIL服务管理实践", 120, 6.0),
    ("数据安全与个人信息保护", 35, 3.0),
)
COMPANIES: Final = (
    ("福州云栈信息技术有限公司", "350100", "林晓", "yunzhan"),
    ("上海数衡软件科技有限公司", "310000", "沈佳", "shuheng"),
    ("深圳智联运维服务有限公司", "440300", "黄磊", "zhilian"),
    ("北京恒信安全技术有限公司", "110000", "刘洋", "hengxin"),
    ("杭州启明数据服务有限公司", "330100", "周敏", "qiming"),
    ("苏州联创测试技术有限公司", "320500", "吴昊", "lianchuang"),
    ("厦门海纳云计算有限公司", "350200", "陈雪", "haina"),
    ("南京博远信息系统有限公司", "320100", "孙杰", "boyuan"),
    ("成都天府软件外包有限公司", "510100", "李娜", "tianfu"),
    ("广州南方网络科技有限公司", "440100", "郭涛", "nanfang"),
)
CATEGORIES: Final = ("运维外包", "软件开发", "测试服务", "数据中心托管", "网络安全服务", "桌面运维")
CERTIFICATES: Final = ("ISO/IEC 27001", "ISO 9001", "CMMI 3级", "ITSS 运维三级", "ISO/IEC 20000")
CRITERIA: Final = (
    "technical_capability",
    "qualifications",
    "financial_health",
    "information_security",
    "references",
)
PROJECTS: Final = (
    ("核心系统运维项目", "核心业务系统7x24小时运维与监控"),
    ("手机银行App开发项目", "手机银行App新版本需求分析、开发与上线"),
    ("数据中心迁移项目", "同城数据中心整体迁移与割接"),
    ("信贷系统升级项目", "信贷管理系统版本升级与历史数据迁移"),
    ("网络安全加固项目", "全行网络边界安全评估与加固"),
    ("客服中心外包项目", "7x24客服热线与在线客服外包"),
    ("数据仓库建设项目", "企业级数据仓库与报表平台建设"),
    ("办公自动化改造项目", "OA系统流程改造与移动办公"),
    ("ERP系统实施项目", "ERP财务与供应链模块实施"),
    ("云平台迁移项目", "开发测试环境迁移至私有云平台"),
    ("软件测试外包项目", "核心系统回归测试与性能测试外包"),
    ("灾备中心建设项目", "异地灾备中心建设与切换演练"),
    ("桌面运维外包项目", "总部及分支机构桌面终端运维"),
    ("反洗钱系统建设项目", "反洗钱监测系统建设与模型调优"),
    ("统一身份认证项目", "统一身份认证与单点登录平台建设"),
    ("电子档案系统项目", "电子档案管理系统建设与历史档案数字化"),
)
MILESTONES: Final = (
    ("需求确认", "需求规格说明书"),
    ("方案设计", "技术方案与设计文档"),
    ("开发完成", "系统功能交付"),
    ("测试完成", "测试报告"),
    ("上线运行", "上线报告与运维手册"),
)
ACCEPTORS: Final = ("福建省软件测评中心", "上海市软件评测中心", "中国信息安全测评中心")
SOURCES: Final = ("零售业务部", "信用卡中心", "运营管理部", "客户服务中心", "分行科技部")
COMPLAINTS: Final = (
    "系统响应缓慢，影响柜面业务办理",
    "夜间批处理延迟，次日报表未按时生成",
    "驻场人员未按约定时间到岗",
    "故障处理超时且未及时通报",
    "交付文档与实际系统不一致",
)
TASKS: Final = (
    "整理巡检记录",
    "更新运维手册",
    "跟进缺陷修复",
    "核对供应商工时",
    "准备季度评审材料",
    "组织用户验收测试",
    "梳理接口清单",
)
COSTS: Final = ("人力成本", "软件许可", "硬件设备", "差旅费用", "云资源")
INCIDENTS: Final = (
    ("availability", "生产数据库主节点宕机，业务中断约40分钟"),
    ("quality", "版本发布引入缺陷，部分转账交易失败"),
    ("security", "发现大量异常登录尝试，已封禁来源地址"),
)
RESOLUTIONS: Final = (
    "各项目组本周五前提交风险清单",
    "更新合作伙伴联系人台账",
    "整理本月外包费用并报财务部",
    "组织信息安全自查",
    "跟进逾期报告的补交",
    "复核即将到期的合作伙伴资质",
)
STRATEGY: Final = (
    "下季度外包预算按项目优先级重新分配",
    "启动合作伙伴年度评估",
    "推进关键岗位AB角配置",
    "制定数据安全专项整改计划",
)
USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"

# -- options, errors, tally ------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 2026
    partners: int = 8
    projects: int = 16
    concurrency: int = 4
    months: int = 12  # how far back the story goes (1-12)


class DemoError(Exception):
    """A call that failed unexpectedly, or an event that never arrived."""


class CallFailed(DemoError):
    def __init__(self, method: str, url: str, status: int | None, body: str) -> None:
        answer = "no answer" if status is None else str(status)
        super().__init__(f"{method} {url} -> {answer}: {body}")


@dataclass
class Tally:
    """What the run created, per kind, and what went wrong."""

    counts: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n


class Board:
    """The live progress display: one bar per part of the story."""

    def __init__(self, progress: Progress, tally: Tally) -> None:
        self.progress = progress
        self.tally = tally
        self._tasks: dict[str, TaskID] = {}

    def start(self, part: str, total: int) -> None:
        self._tasks[part] = self.progress.add_task(part, total=total)

    def advance(self, part: str) -> None:
        self.progress.advance(self._tasks[part])

    def fail(self, what: str, exc: DemoError) -> None:
        self.tally.errors.append(f"{what}: {exc}")
        self.progress.console.print(f"[red]failed[/red] {escape(what)}: {escape(str(exc))}")


# -- time ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """'Now' and 'today' in the policy zone, fixed when the run starts."""

    zone: ZoneInfo
    now: datetime
    holidays: frozenset[date]

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """A moment of `day` (local time), never later than a minute ago."""
        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
        return min(moment, self.now - timedelta(minutes=1)).astimezone(self.zone)

    def ago(self, **delta: float) -> datetime:
        return (self.now - timedelta(**delta)).astimezone(self.zone)

    def local_day(self, moment: str) -> date:
        return datetime.fromisoformat(moment).astimezone(self.zone).date()

    def workday(self, day: date, floor: date | None = None) -> date:
        """`day`, or the working day before it (not before `floor`)."""
        while day.weekday() >= 5 or day in self.holidays:
            day -= timedelta(days=1)
        return max(day, floor) if floor is not None else day


def days_between(rng: random.Random, start: date, end: date) -> date:
    if end <= start:
        return start
    return start + timedelta(days=rng.randint(0, (end - start).days))


# -- HTTP ------------------------------------------------------------------------------------------


class Api:
    """The four services over HTTP, called as the people of the story."""

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient, tally: Tally, run_id: str
    ) -> None:
        self._settings = settings
        self._client = client
        self._issuer = TokenIssuer(settings)
        self._tokens: dict[Person, str] = {}
        self._keys = itertools.count(1)
        self._run_id = run_id
        self.tally = tally

    def url(self, service: str, path: str = "") -> str:
        return f"http://{self._settings.host}:{self._settings.port_of(service)}{path}"

    def _headers(self, who: Person, key: str | None) -> dict[str, str]:
        token = self._tokens.get(who)
        if token is None:
            token = self._issuer.mint(
                who.user_id,
                who.role,
                partner_id=who.partner_id,
                now=datetime.now(UTC),
                ttl=timedelta(hours=8),
            )
            self._tokens[who] = token
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def _send(
        self,
        method: str,
        service: str,
        path: str,
        who: Person,
        *,
        key: str | None = None,
        **kw: Any,
    ) -> httpx.Response:
        url = self.url(service, path)
        attempt = 0
        while True:
            self.tally.calls += 1
            try:
                response = await self._client.request(
                    method, url, headers=self._headers(who, key), **kw
                )
            except httpx.TransportError as exc:
                if attempt >= RETRIES:
                    raise CallFailed(method, url, None, f"{type(exc).__name__}: {exc}") from exc
            else:
                if attempt >= RETRIES or not _worth_retrying(response):
                    return response
            attempt += 1
            self.tally.retries += 1
            await asyncio.sleep(0.2 * 2**attempt)

    @staticmethod
    def _failed(response: httpx.Response) -> CallFailed:
        request = response.request
        return CallFailed(request.method, str(request.url), response.status_code, response.text)

    async def get(self, service: str, path: str, who: Person, **params: str) -> Any:
        response = await self._send("GET", service, path, who, params=params)
        if response.status_code != 200:
            raise self._failed(response)
        return response.json()

    async def find(self, service: str, path: str, who: Person, **params: str) -> Any:
        """Like `get`, but None while the resource is not there (404)."""
        response = await self._send("GET", service, path, who, params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failed(response)
        return response.json()

    def _key(self) -> str:
        return f"demo-{self._run_id}-{next(self._keys)}"

    async def post(self, service: str, path: str, who: Person, body: Json | None = None) -> Json:
        response = await self._send("POST", service, path, who, key=self._key(), json=body)
        if response.status_code not in (200, 201):
            raise self._failed(response)
        answer: Json = response.json()
        return answer

    async def upload(
        self, who: Person, fields: dict[str, str], file_name: str, content: bytes, media_type: str
    ) -> Json:
        """`POST /v1/documents` (multipart): a new document or a new version."""
        response = await self._send(
            "POST",
            "docs",
            "/v1/documents",
            who,
            key=self._key(),
            data=fields,
            files={"file": (file_name, content, media_type)},
        )
        if response.status_code != 201:
            raise self._failed(response)
        answer: Json = response.json()
        return answer

    async def wait(
        self, what: str, probe: Callable[[], Awaitable[T | None]], within: float = WAIT_S
    ) -> T:
        """Until `probe` finds what an event travelling through Kafka brings."""
        deadline = time.monotonic() + within
        while True:
            found = await probe()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {within:.0f} s waiting for {what}")
            await asyncio.sleep(POLL_S)


def _worth_retrying(response: httpx.Response) -> bool:
    """A lost race on an aggregate (another writer, the deadline engine, a
    consumer) or a service not ready: the same request again, same key."""
    if response.status_code == 503:
        return True
    if response.status_code != 409:
        return False
    try:
        kind = str(response.json().get("type", ""))
    except ValueError:
        return False
    return kind.endswith("/version-conflict")


# -- the story's shared context --------------------------------------------------------------------


@dataclass(frozen=True)
class Roster:
    """The department as it stands in the kpi staff directory."""

    director: Person
    managers: tuple[Person, ...]
    teams: dict[str, tuple[Person, ...]]  # PM user id -> their specialists
    joined: dict[str, date]

    @property
    def specialists(self) -> tuple[Person, ...]:
        return tuple(p for team in self.teams.values() for p in team)

    @property
    def everyone(self) -> tuple[Person, ...]:
        return (self.director, *self.managers, *self.specialists)

    def team_of(self, manager: Person) -> tuple[Person, ...]:
        return self.teams.get(manager.user_id) or self.specialists


@dataclass(frozen=True)
class Story:
    api: Api
    clock: Clock
    policy: Policy
    board: Board
    roster: Roster
    seed: int
    suffix: str  # "" on a system without data, else "-<run tag>"
    months: int = 12

    def back(self, days: int) -> date:
        """`days` before today in a twelve-month story, scaled to its months."""
        return self.today - timedelta(days=max(1, round(days * self.months / 12)))

    def rng(self, *parts: object) -> random.Random:
        """A random source of its own per part: the same seed, the same story."""
        return random.Random("/".join(str(p) for p in (self.seed, *parts)))  # noqa: S311

    @property
    def today(self) -> date:
        return self.clock.today


async def guarded(board: Board, what: str, work: Awaitable[T]) -> T | None:
    """Runs one part; a failed call is reported (and fails the run) while the
    other parts go on."""
    try:
        return await work
    except DemoError as exc:
        board.fail(what, exc)
        return None


# -- 1. staff and trainings (R2.2, R2.3) -----------------------------------------------------------


async def build_roster(api: Api, clock: Clock) -> Roster:
    """Joins the demo's people who are not in the directory yet; keeps the
    Director the department has."""
    listed = await api.get("kpi", "/v1/kpi/staff", AUDITOR, include_left="true")
    directory: dict[str, Json] = {p["user_id"]: p for p in listed}
    director_id = next(
        (u for u, p in directory.items() if p["role"] == "director" and p["left_on"] is None),
        None,
    )
    joined = {u: date.fromisoformat(p["joined_on"]) for u, p in directory.items()}
    superiors = {u: p["superior"] for u, p in directory.items()}
    usable: list[StaffSeed] = []
    for seed in STAFF:
        if seed.role == "director" and director_id is not None:
            continue
        person = directory.get(seed.user_id)
        if person is not None:
            if person["left_on"] is None and person["role"] == seed.role:
                usable.append(seed)
            else:
                api.tally.notes.append(
                    f"{seed.user_id} is in the directory as a {person['role']}"
                    f"{' who left' if person['left_on'] else ''}: left out of the story"
                )
            continue
        director_id = director_id or (seed.user_id if seed.role == "director" else None)
        superior = _superior_for(seed, director_id, usable)
        day = clock.today - timedelta(days=seed.joined_days_ago)
        body = {
            "user_id": seed.user_id,
            "name": seed.name,
            "role": seed.role,
            "superior": superior,
            "joined_on": day.isoformat(),
        }
        await api.post("kpi", "/v1/kpi/staff", Person(director_id or "", "director"), body)
        api.tally.add("staff joined")
        joined[seed.user_id] = day
        superiors[seed.user_id] = superior
        usable.append(seed)
    if director_id is None:
        raise DemoError("the staff directory has no Director")
    return _roster(director_id, usable, superiors, joined, directory)


def _superior_for(seed: StaffSeed, director_id: str | None, usable: list[StaffSeed]) -> str | None:
    if seed.role == "director":
        return None
    if seed.role == "project_manager":
        return director_id
    managers = [s.user_id for s in usable if s.role == "project_manager"]
    if not managers:
        raise DemoError("no project manager in the directory to lead the specialists")
    return seed.superior if seed.superior in managers else managers[0]


def _roster(
    director_id: str,
    usable: list[StaffSeed],
    superiors: dict[str, str | None],
    joined: dict[str, date],
    directory: dict[str, Json],
) -> Roster:
    def name(user_id: str, fallback: str) -> str:
        return str(directory.get(user_id, {}).get("name") or fallback)

    director_name = next((s.name for s in STAFF if s.user_id == director_id), "")
    managers = tuple(
        Person(s.user_id, s.role, name(s.user_id, s.name))
        for s in usable
        if s.role == "project_manager"
    )
    if not managers:
        raise DemoError("no project manager in the directory")
    teams = {
        m.user_id: tuple(
            Person(s.user_id, s.role, name(s.user_id, s.name))
            for s in usable
            if s.role == "specialist" and superiors.get(s.user_id) == m.user_id
        )
        for m in managers
    }
    if not any(teams.values()):
        raise DemoError("no specialist in the directory")
    director = Person(director_id, "director", name(director_id, director_name))
    return Roster(director, managers, teams, joined)


async def hold_trainings(story: Story) -> None:
    rng = story.rng("trainings")
    for title, days_ago, hours in TRAININGS:
        held_on = story.clock.workday(story.back(days_ago + rng.randint(0, 6)))
        attendees = [
            p.user_id
            for p in story.roster.everyone
            if story.roster.joined.get(p.user_id, held_on) <= held_on
        ]
        if len(attendees) > 4:
            attendees.remove(rng.choice(attendees))  # somebody is always away
        body = {
            "title": title,
            "held_on": held_on.isoformat(),
            "hours": hours,
            "attendees": attendees,
        }
        await story.api.post("kpi", "/v1/kpi/trainings", story.roster.director, body)
        story.api.tally.add("trainings")
        story.board.advance("staff and trainings")


# -- 2. partners (R2.1) ----------------------------------------------------------------------------

Verdict = Literal["qualified", "rejected", "requalified"]


@dataclass(frozen=True)
class PartnerPlan:
    index: int
    body: Json
    verdict: Verdict
    evaluator: Person
    scores: dict[str, int]
    certificates: list[Json]


@dataclass(frozen=True)
class PartnerRef:
    id: str
    name: str
    vendor: Person  # the partner's own user (role `partner`)


def credit_code(rng: random.Random, division: str) -> str:
    """A valid unified social credit code (GB 32100-2015, check character mod 31)."""
    body = "91" + division + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    total = sum(USCC_ALPHABET.index(ch) * pow(3, i, 31) for i, ch in enumerate(body))
    return body + USCC_ALPHABET[(31 - total % 31) % 31]


def plan_partner(story: Story, index: int, verdict: Verdict, run_id: str) -> PartnerPlan:
    rng = story.rng("partner", index)
    name, division, contact, domain = COMPANIES[index % len(COMPANIES)]
    if index >= len(COMPANIES):
        name = name.replace("有限公司", f"第{index // len(COMPANIES) + 1}分公司")
    suffix = f"（{story.suffix.lstrip('-')}）" if story.suffix else ""
    ids = random.Random(f"{run_id}/{index}")  # noqa: S311 - unique per run, not secret
    low = verdict != "qualified"
    scores = {
        c: rng.randint(1, 2) if low and c == "information_security" else rng.randint(3, 5)
        for c in CRITERIA
    }
    certificates = [
        {
            "name": cert,
            "certificate_no": f"CN-{rng.randint(10**7, 10**8 - 1)}",
            "expires_on": (story.today + timedelta(days=rng.randint(200, 900))).isoformat(),
        }
        for cert in rng.sample(CERTIFICATES, rng.randint(1, 3))
    ]
    body = {
        "name": f"{name}{suffix}",
        "unified_social_credit_code": credit_code(ids, division),
        "contact": {
            "name": contact,
            "email": f"{domain}{index + 1}@{domain}.example",
            "phone": f"13{rng.randint(0, 999_999_999):09d}",
        },
        "service_categories": rng.sample(CATEGORIES, rng.randint(1, 3)),
    }
    evaluator = rng.choice(story.roster.specialists)
    return PartnerPlan(index, body, verdict, evaluator, scores, certificates)


def verdicts(count: int) -> list[Verdict]:
    """Most partners pass due diligence; about one in four is rejected, and
    with two or more rejected the last one passes after remediation."""
    rejected = max(1, count // 4) if count >= 2 else 0
    out: list[Verdict] = ["qualified" if i < count - rejected else "rejected" for i in range(count)]
    if rejected >= 2:
        out[-1] = "requalified"
    return out


async def onboard_partner(story: Story, plan: PartnerPlan) -> PartnerRef | None:
    api, director = story.api, story.roster.director
    partner = await api.post("partner", "/v1/partners", plan.evaluator, plan.body)
    api.tally.add("partners registered")
    pid = partner["id"]
    found = "信息安全管理体系不健全" if plan.verdict != "qualified" else "资质齐全，技术能力良好"
    await _evaluate(story, plan, pid, plan.scores, f"尽职调查：{found}")
    if plan.verdict == "qualified":
        await api.post(
            "partner", f"/v1/partners/{pid}/qualification", director, {"reason": "尽职调查通过"}
        )
        api.tally.add("partners qualified")
    else:
        reason = {"reason": "信息安全管理评分不达标"}
        await api.post("partner", f"/v1/partners/{pid}/rejection", director, reason)
        api.tally.add("partners rejected")
        if plan.verdict == "rejected":
            return None
        better = {c: max(s, 4) for c, s in plan.scores.items()}
        await _evaluate(story, plan, pid, better, "整改后复评：已通过ISO/IEC 27001认证")
        await api.post(
            "partner", f"/v1/partners/{pid}/qualification", director, {"reason": "整改后复评通过"}
        )
        api.tally.add("partners qualified after remediation")
    vendor = Person(f"vendor.{plan.body['contact']['email'].split('@')[0]}", "partner", "", pid)
    return PartnerRef(pid, partner["name"], vendor)


async def _evaluate(
    story: Story, plan: PartnerPlan, pid: str, scores: dict[str, int], summary: str
) -> None:
    body = {"scores": scores, "qualifications": plan.certificates, "summary": summary}
    await story.api.post("partner", f"/v1/partners/{pid}/evaluations", plan.evaluator, body)
    story.api.tally.add("partner evaluations")


# -- 3. projects: the plan (pure) ------------------------------------------------------------------

Fate = Literal["completed", "ongoing", "failed", "terminated", "rejected", "awaiting", "contracted"]
#: The fates of projects 0, 1, 2, ... (repeating): the first three already
#: show a whole life, a running project with a data leak, and a termination.
FATES: Final[tuple[Fate, ...]] = (
    "completed",
    "ongoing",
    "terminated",
    "ongoing",
    "completed",
    "failed",
    "rejected",
    "ongoing",
    "awaiting",
    "contracted",
    "ongoing",
    "completed",
)
Decision = Literal["budget_increase", "contract_renewal", "scope_change"]
DECISIONS: Final[dict[int, Decision]] = {
    3: "budget_increase",
    7: "contract_renewal",
    10: "scope_change",
}


@dataclass(frozen=True)
class MilestonePlan:
    milestone_id: str
    name: str
    deliverable: str
    due_on: date
    delivered_on: date | None = None
    redelivered_on: date | None = None  # rejected first, delivered again on this day
    judged: bool = True


TaskStage = Literal["assigned", "acknowledged", "completed"]
STAGES: Final[tuple[TaskStage, ...]] = ("completed", "acknowledged", "assigned")


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    title: str
    specialist: Person
    assigned_on: date
    due_on: date
    stage: TaskStage


@dataclass(frozen=True)
class ComplaintPlan:
    received_at: datetime
    source: str
    severity: str
    summary: str
    by_vendor: bool
    resolved: bool


@dataclass(frozen=True)
class IncidentPlan:
    day: date
    category: str
    severity: str
    occurred_at: datetime
    detected_at: datetime
    description: str
    sanctions: tuple[Json, ...] = ()


@dataclass(frozen=True)
class ProjectPlan:
    index: int
    fate: Fate
    title: str
    scope: str
    partner: PartnerRef
    manager: Person
    specialists: tuple[Person, ...]
    budget: Decimal
    value: Decimal
    returned: bool  # the department head asks for more information first
    signed_on: date | None = None
    ends_on: date | None = None
    kickoff_on: date | None = None
    end_on: date | None = None  # last day of activity (acceptance, failure, today)
    acceptor: str = ""
    milestones: tuple[MilestonePlan, ...] = ()
    reviews: tuple[date, ...] = ()
    costs: tuple[tuple[date, Decimal, str], ...] = ()
    tasks: tuple[TaskPlan, ...] = ()
    complaints: tuple[ComplaintPlan, ...] = ()
    incidents: tuple[IncidentPlan, ...] = ()
    surveys: tuple[tuple[int, str], ...] = ()
    decision: Decision | None = None
    report_ratio: float = 0.8  # share of past weekly reports that were filed at all

    @property
    def label(self) -> str:
        return f"project {self.index + 1} {self.title}"


def plan_project(story: Story, index: int, partner: PartnerRef) -> ProjectPlan:
    rng = story.rng("project", index)
    fate = FATES[index % len(FATES)]
    base, scope = PROJECTS[index % len(PROJECTS)]
    if index >= len(PROJECTS):
        base = f"{base.removesuffix('项目')}{index // len(PROJECTS) + 1}期项目"
    manager = story.roster.managers[index % len(story.roster.managers)]
    team = story.roster.team_of(manager)
    budget = Decimal(rng.randrange(30, 300) * 10_000)
    plan = ProjectPlan(
        index=index,
        fate=fate,
        title=f"{base}{story.suffix}",
        scope=scope,
        partner=partner,
        manager=manager,
        specialists=tuple(rng.sample(team, min(len(team), rng.randint(1, 2)))),
        budget=budget,
        value=(budget * Decimal(rng.randint(90, 100)) / 100).quantize(Decimal(100)),
        returned=rng.random() < 0.25,
        decision=DECISIONS.get(index % len(FATES)),
        report_ratio=rng.uniform(0.65, 0.95),
    )
    if fate in ("rejected", "awaiting"):
        return plan
    return _plan_contract(story, rng, plan)


def _plan_contract(story: Story, rng: random.Random, plan: ProjectPlan) -> ProjectPlan:
    clock, today = story.clock, story.today
    back = {
        "completed": (210, 330),
        "failed": (150, 300),
        "terminated": (150, 300),
        "ongoing": (25, 300),
    }
    if plan.fate == "contracted":  # kickoff overdue (R3.2), or still within its days
        signed = clock.workday(today - timedelta(days=3 if plan.index // len(FATES) % 2 else 12))
        return replace(plan, signed_on=signed, ends_on=signed + timedelta(days=365))
    low, high = back[plan.fate]
    signed = clock.workday(story.back(rng.randint(low, high)))
    late = rng.random() < 0.2
    kickoff = clock.workday(
        signed + timedelta(days=rng.randint(10, 16) if late else rng.randint(1, 6)), signed
    )
    kickoff = min(kickoff, today)
    if plan.fate in ("completed", "ongoing"):
        end = today  # a completed project's end follows from its deliveries, below
    else:
        end = clock.workday(story.back(rng.randint(10, 60)), kickoff)
        end = max(end, min(today, kickoff + (today - story.back(45))))
    plan = replace(
        plan,
        signed_on=signed,
        ends_on=signed + timedelta(days=rng.choice((365, 365, 540))),
        kickoff_on=kickoff,
        end_on=end,
        acceptor=rng.choice(ACCEPTORS),
    )
    plan = replace(plan, milestones=_plan_milestones(story, rng, plan))
    if plan.fate == "completed":
        last = max(m.redelivered_on or m.delivered_on or kickoff for m in plan.milestones)
        end = min(today, clock.workday(last + timedelta(days=rng.randint(2, 6)), last))
        plan = replace(plan, end_on=end)
    return replace(
        plan,
        reviews=_plan_reviews(story, rng, plan),
        costs=_plan_costs(story, rng, plan),
        tasks=_plan_tasks(story, rng, plan),
        complaints=_plan_complaints(story, rng, plan),
        incidents=_plan_incidents(story, rng, plan),
        surveys=tuple(
            (rng.choice((5, 5, 4, 4, 4, 3, 3, 2)), rng.choice(SOURCES))
            for _ in range(rng.randint(1, 2))
        ),
    )


def _plan_milestones(
    story: Story, rng: random.Random, plan: ProjectPlan
) -> tuple[MilestonePlan, ...]:
    assert plan.kickoff_on is not None and plan.ends_on is not None and plan.end_on is not None
    clock, today = story.clock, story.today
    count = rng.randint(3, 5)
    chosen = [*MILESTONES[: count - 1], MILESTONES[-1]]
    first = plan.kickoff_on + timedelta(days=30)
    last = today - timedelta(days=25) if plan.fate == "completed" else plan.ends_on
    last = max(last, first + timedelta(days=20 * count))
    step = (last - first) / count
    deliver_by = {"completed": today - timedelta(days=10), "ongoing": today - timedelta(days=2)}
    cutoff = deliver_by.get(plan.fate, plan.end_on - timedelta(days=3))
    out: list[MilestonePlan] = []
    for n, (name, deliverable) in enumerate(chosen, start=1):
        due = clock.workday(first + step * n, first)
        if due > cutoff and plan.fate != "completed":
            out.append(MilestonePlan(f"M{n}", name, deliverable, due))
            continue
        slip = rng.randint(-7, 0) if rng.random() < 0.7 else rng.randint(2, 12)
        delivered = min(clock.workday(due + timedelta(days=slip), plan.kickoff_on), cutoff)
        delivered = max(delivered, plan.kickoff_on)
        again = None
        if rng.random() < 0.25:
            latest = plan.end_on if plan.fate in ("failed", "terminated") else today
            again = min(delivered + timedelta(days=rng.randint(3, 8)), latest)
            again = max(again, delivered)
        judged = plan.fate != "ongoing" or rng.random() < 0.7
        out.append(MilestonePlan(f"M{n}", name, deliverable, due, delivered, again, judged))
    return tuple(out)


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def next_quarter(start: date) -> date:
    return date(start.year + (start.month == 10), (start.month + 2) % 12 + 1, 1)


def _plan_reviews(story: Story, rng: random.Random, plan: ProjectPlan) -> tuple[date, ...]:
    """One mid-term review a quarter (R3.3), a few of them missed."""
    assert plan.signed_on is not None and plan.end_on is not None
    out: list[date] = []
    start = quarter_start(plan.signed_on)
    while start <= plan.end_on:
        end = next_quarter(start) - timedelta(days=1)
        first, last = max(start, plan.signed_on), min(end, plan.end_on)
        if first <= last and rng.random() < 0.85:
            day = story.clock.workday(days_between(rng, first, last), first)
            if day <= last:
                out.append(day)
        start = next_quarter(start)
    return tuple(out)


def _plan_costs(
    story: Story, rng: random.Random, plan: ProjectPlan
) -> tuple[tuple[date, Decimal, str], ...]:
    """Costs summing to a share of the budget: some projects end more than 5%
    under it (R6.3), some over it."""
    assert plan.signed_on is not None and plan.ends_on is not None and plan.end_on is not None
    shape = rng.random()
    factor = (
        rng.uniform(0.82, 0.93)
        if shape < 0.4
        else rng.uniform(0.96, 1.0)
        if shape < 0.75
        else rng.uniform(1.04, 1.15)
    )
    done = (plan.end_on - plan.signed_on) / (plan.ends_on - plan.signed_on)
    share = (
        1.0 if plan.fate == "completed" else min(1.0, done) * (0.9 if plan.fate != "ongoing" else 1)
    )
    total = (plan.budget * Decimal(str(round(factor * share, 4)))).quantize(Decimal("0.01"))
    count = rng.randint(3, 7)
    weights = [rng.uniform(0.5, 1.5) for _ in range(count)]
    amounts = [
        (total * Decimal(str(round(w / sum(weights), 6)))).quantize(Decimal("0.01"))
        for w in weights[:-1]
    ]
    amounts.append(total - sum(amounts, Decimal(0)))
    days = sorted(days_between(rng, plan.signed_on, plan.end_on) for _ in range(count))
    return tuple(
        (story.clock.workday(d, plan.signed_on), a, rng.choice(COSTS))
        for d, a in zip(days, amounts, strict=True)
        if a > 0
    )


def _plan_tasks(story: Story, rng: random.Random, plan: ProjectPlan) -> tuple[TaskPlan, ...]:
    assert plan.kickoff_on is not None and plan.end_on is not None
    out: list[TaskPlan] = []
    for n in range(1, rng.randint(2, 5) + 1):
        assigned = days_between(rng, plan.kickoff_on, plan.end_on)
        if rng.random() < 0.6:
            due = story.today + timedelta(days=rng.randint(3, 30))  # completed now: on time
        else:
            due = assigned + timedelta(days=rng.randint(5, 15))  # mostly past: late
        stage = rng.choices(STAGES, (60, 25, 15))[0]
        specialist = rng.choice(plan.specialists)
        out.append(TaskPlan(f"T{n:02d}", rng.choice(TASKS), specialist, assigned, due, stage))
    return tuple(out)


def _plan_complaints(
    story: Story, rng: random.Random, plan: ProjectPlan
) -> tuple[ComplaintPlan, ...]:
    assert plan.kickoff_on is not None and plan.end_on is not None
    out: list[ComplaintPlan] = []
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        day = days_between(rng, plan.kickoff_on, plan.end_on)
        out.append(
            ComplaintPlan(
                received_at=story.clock.at(day, rng.randint(9, 17), rng.randint(0, 59)),
                source=rng.choice(SOURCES),
                severity=rng.choices(("low", "medium", "high", "critical"), (3, 4, 2, 1))[0],
                summary=rng.choice(COMPLAINTS),
                by_vendor=rng.random() < 0.5,
                resolved=rng.random() < 0.75,
            )
        )
    return tuple(out)


def _plan_incidents(
    story: Story, rng: random.Random, plan: ProjectPlan
) -> tuple[IncidentPlan, ...]:
    """A data leak reported within the hour (the first running project), one
    reported late (a terminated project), and now and then another incident."""
    assert plan.kickoff_on is not None and plan.end_on is not None
    clock, out = story.clock, []
    blame = (
        {"subject": plan.specialists[0].user_id, "subject_kind": "staff", "level": "warning"},
        {"subject": plan.partner.id, "subject_kind": "partner", "level": "serious_warning"},
    )
    if plan.index % len(FATES) == 1:
        out.append(
            IncidentPlan(
                story.today,
                "data_leak",
                "high",
                clock.ago(hours=2, minutes=30),
                clock.ago(minutes=35),
                "外包人员违规将含客户信息的测试数据拷贝至个人网盘，已删除并封禁账号",
                blame,
            )
        )
    if plan.fate == "terminated":
        day = clock.workday(plan.end_on - timedelta(days=2), plan.kickoff_on)
        out.append(
            IncidentPlan(
                day,
                "data_leak",
                "critical",
                clock.at(day, 1, 20),
                clock.at(day, 9, 10),
                "合作伙伴运维账号泄露，约两千条客户记录被非法导出",
                (blame[0] | {"level": "demotion"}, blame[1]),
            )
        )
    if rng.random() < 0.35:
        category, description = rng.choice(INCIDENTS)
        day = days_between(rng, plan.kickoff_on, plan.end_on)
        severity = rng.choice(("medium", "high", "critical"))
        hour = rng.randint(0, 20)
        out.append(
            IncidentPlan(
                day,
                category,
                severity,
                clock.at(day, hour),
                clock.at(day, hour + rng.randint(0, 3), 30),
                description,
                (blame[0],),
            )
        )
    return tuple(out)


# -- 3. projects: running the plan over HTTP -------------------------------------------------------


@dataclass(frozen=True, order=True)
class Step:
    """One dated step of a project's year, run in date order."""

    day: date
    order: int
    seq: int
    run: Callable[[], Awaitable[None]] = field(compare=False)


@dataclass
class ProjectOutcome:
    id: str
    plan: ProjectPlan
    sanctioned_partner: bool = False


class ProjectRun:
    """Drives one project through the partner, approval and docs services."""

    def __init__(self, story: Story, plan: ProjectPlan) -> None:
        self.story = story
        self.api = story.api
        self.plan = plan
        self.director = story.roster.director
        self.pm = plan.manager
        self.rng = story.rng("run", plan.index)
        self.project: Json = {}
        self.sanctioned_partner = False

    @property
    def pid(self) -> str:
        return str(self.project["id"])

    def count(self, kind: str, n: int = 1) -> None:
        self.api.tally.add(kind, n)

    async def command(self, path: str, who: Person, body: Json | None = None) -> Json:
        self.project = await self.api.post("partner", f"/v1/projects/{self.pid}{path}", who, body)
        return self.project

    async def reload(self) -> Json:
        self.project = await self.api.get("partner", f"/v1/projects/{self.pid}", self.pm)
        return self.project

    # -- the whole life ------------------------------------------------------------------------

    async def live(self) -> ProjectOutcome:
        plan = self.plan
        await self.create()
        if await self.procure() and plan.signed_on is not None:
            await self.sign_contract()
            await self.meet_the_clocks()
            for step in sorted(self.timeline()):
                await step.run()
            await self.file_documents()
            await self.finish()
        return ProjectOutcome(self.pid, plan, self.sanctioned_partner)

    async def create(self) -> None:
        plan = self.plan
        body = {
            "partner_id": plan.partner.id,
            "title": plan.title,
            "scope": plan.scope,
            "budget": str(plan.budget),
            "currency": "CNY",
            "project_manager": self.pm.user_id,
            "specialists": [s.user_id for s in plan.specialists],
            "milestones": [
                {
                    "milestone_id": m.milestone_id,
                    "name": m.name,
                    "deliverable": m.deliverable,
                    "due_on": m.due_on.isoformat(),
                }
                for m in plan.milestones or _future_milestones(self.story.today)
            ],
        }
        self.project = await self.api.post("partner", "/v1/projects", self.pm, body)
        self.count("projects")

    # -- procurement approval (R3.1), through the approval service -----------------------------

    async def procure(self) -> bool:
        """The three signatures; True once the project is approved."""
        asked = await self.command(
            "/procurement-approval-requests", self.pm, {"justification": _justification(self.plan)}
        )
        rid = str(asked["approval_request_id"])
        await self.api.wait(
            f"approval request {rid} to open (partner.events -> approval)",
            lambda: self.api.find("approval", f"/v1/approvals/{rid}", DEPT_HEAD),
        )
        if self.plan.returned:
            await self.returned_once(rid)
        for signer, step in ((DEPT_HEAD, "department_head"), (FINANCE, "finance"), (CEO, "ceo")):
            if step == "finance" and self.plan.fate == "awaiting":
                self.count("procurement awaiting Finance")
                return False
            if step == "finance" and self.plan.fate == "rejected":
                await self.decide(rid, FINANCE, "reject", "finance", "超出本年度信息化预算额度")
                await self.until_status("procurement_rejected")
                self.count("procurement rejected")
                return False
            await self.decide(rid, signer, "approve", step, "同意")
        await self.until_status("approved")
        self.count("procurement approved")
        return True

    async def decide(self, rid: str, who: Person, decision: str, step: str, reason: str) -> None:
        body = {"decision": decision, "step": step, "reason": reason}
        await self.api.post("approval", f"/v1/approvals/{rid}/decisions", who, body)
        self.count("approval decisions")

    async def returned_once(self, rid: str) -> None:
        """The department head asks for more; the PM answers; the step opens again."""
        await self.decide(rid, DEPT_HEAD, "return", "department_head", "请补充三家供应商比价材料")
        answer = {"response": "已补充三家供应商报价对比及评分表"}
        await self.api.post("approval", f"/v1/approvals/{rid}/resubmission", self.pm, answer)
        self.count("approvals returned and resubmitted")

    async def until_status(self, status: str) -> None:
        async def reached() -> bool | None:
            return True if (await self.reload())["status"] == status else None

        await self.api.wait(f"{self.plan.label} to become {status} (approval -> partner)", reached)

    # -- contract and the dated steps ----------------------------------------------------------

    async def sign_contract(self) -> None:
        plan = self.plan
        assert plan.signed_on is not None and plan.ends_on is not None
        body = {
            "contract_number": f"HT-{plan.signed_on:%Y%m}-{plan.index + 1:03d}{self.story.suffix}",
            "value": str(plan.value),
            "currency": "CNY",
            "signed_on": plan.signed_on.isoformat(),
            "starts_on": plan.signed_on.isoformat(),
            "ends_on": plan.ends_on.isoformat(),
            "sla_terms": ["系统可用性不低于99.9%", "重大故障30分钟内响应"],
            "third_party_acceptor": plan.acceptor or ACCEPTORS[0],
        }
        await self.command("/contract", self.pm, body)
        self.count("contracts signed")

    async def meet_the_clocks(self) -> None:
        """The kickoff and the quarterly reviews right after the contract: the
        partner service's deadline engine runs on the real clock and a
        backdated contract's kickoff and review clocks are already past, so the
        engine would record them overdue (R3.5) if they came later, in date
        order with the other steps; they are dated in the past all the same."""
        if self.plan.kickoff_on is not None:
            await self.kickoff()
        for day in self.plan.reviews:
            await self.review(day)

    def timeline(self) -> Iterator[Step]:
        """The other dated steps, in date order."""
        plan, seq = self.plan, itertools.count()
        for m in plan.milestones:
            if m.delivered_on is not None:
                yield Step(m.delivered_on, 2, next(seq), partial(self.deliver, m))
        for day, amount, category in plan.costs:
            yield Step(day, 3, next(seq), partial(self.cost, day, amount, category))
        for task in plan.tasks:
            yield Step(task.assigned_on, 4, next(seq), partial(self.task, task))
        for complaint in plan.complaints:
            day = complaint.received_at.date()
            yield Step(day, 5, next(seq), partial(self.complaint, complaint))
        for incident in plan.incidents:
            yield Step(incident.day, 6, next(seq), partial(self.incident, incident))
        if plan.end_on is not None:
            for score, who in plan.surveys:
                yield Step(plan.end_on, 7, next(seq), partial(self.survey, score, who))

    async def kickoff(self) -> None:
        plan = self.plan
        assert plan.kickoff_on is not None and plan.signed_on is not None
        body = {
            "held_on": plan.kickoff_on.isoformat(),
            "goals": ["按期完成各里程碑交付", "系统可用性不低于99.9%"],
            "timetable": "；".join(f"{m.name} {m.due_on}" for m in plan.milestones),
            "responsibilities": [
                {"person": self.pm.user_id, "duty": "总体负责进度与质量"},
                *({"person": s.user_id, "duty": "日常执行、文档与报告"} for s in plan.specialists),
            ],
        }
        answer = await self.command("/kickoff", self.pm, body)
        self.count("kickoffs held")
        due = datetime.fromisoformat(answer["contract"]["kickoff_due_at"])
        if self.story.clock.at(plan.kickoff_on, 23, 59) > due:
            self.count("kickoffs held late")

    async def review(self, day: date) -> None:
        risk = self.rng.choices(("low", "medium", "high"), (4, 3, 1))[0]
        body = {
            "held_on": day.isoformat(),
            "progress": f"截至{day:%Y年%m月%d日}，项目按计划推进，已完成阶段性目标。",
            "risk_rating": risk,
            "issues": []
            if risk == "low"
            else ["关键岗位人员变动", "部分接口联调滞后"][: 1 + (risk == "high")],
        }
        await self.command("/reviews", self.pm, body)
        self.count("quarterly reviews")

    async def deliver(self, m: MilestonePlan) -> None:
        assert m.delivered_on is not None
        vendor = self.plan.partner.vendor
        who = vendor if self.rng.random() < 0.5 else self.pm
        path = f"/milestones/{m.milestone_id}"
        await self.command(f"{path}/deliveries", who, {"delivered_on": m.delivered_on.isoformat()})
        self.count("milestone deliveries")
        if m.delivered_on > m.due_on:
            self.count("milestone deliveries late")
        if m.redelivered_on is not None:
            reasons = {"accepted": False, "reasons": ["交付物缺少测试用例与验收记录"]}
            await self.command(f"{path}/acceptance", self.pm, reasons)
            self.count("milestone deliveries rejected")
            body = {
                "delivered_on": m.redelivered_on.isoformat(),
                "note": "按验收意见补充后重新交付",
            }
            await self.command(f"{path}/deliveries", vendor, body)
            self.count("milestone deliveries")
        if m.judged:
            await self.command(f"{path}/acceptance", self.pm, {"accepted": True})
            self.count("milestones accepted")

    async def cost(self, day: date, amount: Decimal, category: str) -> None:
        body = {
            "amount": str(amount),
            "category": category,
            "incurred_on": day.isoformat(),
            "note": f"{day:%Y年%m月}{category}",
        }
        await self.command("/costs", self.pm, body)
        self.count("costs recorded")

    async def task(self, t: TaskPlan) -> None:
        body = {
            "task_id": t.task_id,
            "title": t.title,
            "specialist": t.specialist.user_id,
            "due_on": t.due_on.isoformat(),
        }
        await self.command("/tasks", self.pm, body)
        self.count("tasks assigned")
        if t.stage == "assigned":
            return
        await self.command(f"/tasks/{t.task_id}/acknowledgement", t.specialist)
        if t.stage == "completed":
            await self.command(f"/tasks/{t.task_id}/completion", t.specialist)
            self.count("tasks completed")

    async def complaint(self, c: ComplaintPlan) -> None:
        before = set(self.project["complaints"])
        body = {
            "source": c.source,
            "severity": c.severity,
            "summary": c.summary,
            "received_at": c.received_at.isoformat(),
        }
        answer = await self.command("/complaints", self.plan.specialists[0], body)
        self.count("complaints")
        (cid,) = set(answer["complaints"]) - before
        responder = self.plan.partner.vendor if c.by_vendor else self.pm
        response = {"response": "已成立专项小组排查，两个工作日内给出处理方案"}
        await self.command(f"/complaints/{cid}/response", responder, response)
        self.count("complaint responses")
        if c.resolved:
            resolution = {"resolution": "问题已整改并经业务部门确认"}
            await self.command(f"/complaints/{cid}/resolution", self.pm, resolution)
            self.count("complaints resolved")

    async def incident(self, i: IncidentPlan) -> None:
        before = set(self.project["investigations"])
        body = {
            "category": i.category,
            "severity": i.severity,
            "occurred_at": i.occurred_at.isoformat(),
            "detected_at": i.detected_at.isoformat(),
            "description": i.description,
        }
        answer = await self.command("/incidents", self.plan.specialists[0], body)
        self.count("incidents reported")
        if i.category == "data_leak":
            self.count("data leaks reported")
        for iid in sorted(set(answer["investigations"]) - before):
            findings = {
                "findings": f"调查结论：{i.description}；相关责任已认定。",
                "sanctions": list(i.sanctions),
            }
            await self.command(f"/investigations/{iid}/conclusion", self.director, findings)
            self.count("investigations concluded")
            self.count("sanctions", len(i.sanctions))
            self.sanctioned_partner |= any(s["subject_kind"] == "partner" for s in i.sanctions)

    async def survey(self, score: int, respondent: str) -> None:
        body = {
            "score": score,
            "respondent": respondent,
            "comment": "整体满意" if score >= 4 else "响应速度有待提升",
        }
        await self.command("/satisfaction-surveys", self.pm, body)
        self.count("satisfaction surveys")

    # -- the end of the story ------------------------------------------------------------------

    async def finish(self) -> None:
        plan = self.plan
        if plan.fate == "completed":
            await self.accept_finally()
            await self.close("completed", self.pm, "项目通过第三方验收，正常结项")
        elif plan.fate == "failed":
            await self.close("failed", self.pm, "关键里程碑多次延期，业务部门决定终止需求")
        elif plan.fate == "terminated":
            await self.close("terminated", self.director, "合作伙伴发生重大数据泄露，依合同解除")
        elif plan.fate == "ongoing" and plan.decision is not None:
            await self.director_decision(plan.decision)

    async def accept_finally(self) -> None:
        plan = self.plan
        assert plan.end_on is not None
        body = {
            "accepted_on": plan.end_on.isoformat(),
            "third_party": plan.acceptor,
            "signatory": "王工（第三方测评）",
            "report_ref": f"YS-{plan.end_on:%Y%m%d}-{plan.index + 1:03d}",
        }
        await self.command("/final-acceptance", self.pm, body)
        self.count("final acceptances")
        await self.file_meeting_minutes("acceptance", "验收报告", 1)

    async def close(self, outcome: str, who: Person, reason: str) -> None:
        await self.command("/closure", who, {"outcome": outcome, "reason": reason})
        self.count(f"projects closed {outcome}")

    async def director_decision(self, kind: Decision) -> None:
        """R5.1/R5.2: a major decision goes to the Director in the approval
        service; the answer comes back to the project through Kafka."""
        decision_id = await self.ask_director(kind)
        await self.api.wait(
            f"Director decision {decision_id} to open",
            lambda: self.api.find("approval", f"/v1/approvals/{decision_id}", self.director),
        )
        approve = kind != "scope_change"
        body = {
            "decision": "approve" if approve else "reject",
            "reason": "同意" if approve else "范围变更请另行立项",
        }
        await self.api.post(
            "approval", f"/v1/approvals/{decision_id}/decisions", self.director, body
        )
        self.count("Director decisions")

        async def applied() -> bool | None:
            return True if not (await self.reload())["pending_decisions"] else None

        await self.api.wait(f"{self.plan.label}: the Director's decision to apply", applied)

    async def ask_director(self, kind: Decision) -> str:
        plan = self.plan
        assert plan.ends_on is not None
        if kind == "budget_increase":
            pct = Decimal(str(self.story.policy.decisions.major_budget_increase_percent + 8))
            new_budget = (plan.budget * (100 + pct) / 100).quantize(Decimal(100))
            body = {"new_budget": str(new_budget), "reason": "新增两个分行接入，扩大服务范围"}
            answer = await self.command("/budget", self.pm, body)
        elif kind == "contract_renewal":
            end = plan.ends_on + timedelta(days=180)
            body = {"new_end_date": end.isoformat(), "reason": "业务连续性需要，续签半年"}
            answer = await self.command("/renewal", self.pm, body)
        else:
            body = {"new_scope": f"{plan.scope}，并增加移动端运维", "reason": "业务部门新增需求"}
            answer = await self.command("/scope", self.pm, body)
        (pending,) = answer["pending_decisions"]
        return str(pending["decision_id"])

    # -- the docs service: contract, minutes, reports (R4.1-R4.5) ------------------------------

    async def file_documents(self) -> None:
        plan = self.plan
        await self.api.wait(
            f"{plan.label}: its report schedule in the docs service (partner.events -> docs)",
            lambda: self.api.find("docs", f"/v1/schedules/{self.pid}", self.director),
        )
        await self.file_contract()
        if plan.kickoff_on is not None:
            await self.file_meeting_minutes("kickoff", "启动会纪要", 1)
        if plan.reviews:
            await self.file_meeting_minutes("midterm_review", "中期评审报告", len(plan.reviews))
        if plan.kickoff_on is not None:
            await self.file_reports()

    async def file_contract(self) -> None:
        plan = self.plan
        assert plan.signed_on is not None
        name = f"{plan.title}-{plan.signed_on:%Y-%m-%d}-合同"
        fields = {
            "type": "合同",
            "period": plan.signed_on.isoformat(),
            "project_id": self.pid,
            "name": name,
        }
        text = f"%PDF-1.7\n{plan.title} 外包服务合同\n甲方：本公司 乙方：{plan.partner.name}\n"
        content = text.encode()
        await self.api.upload(self.pm, fields, "contract.pdf", content, "application/pdf")
        self.count("contracts archived (encrypted)")

    async def file_meeting_minutes(self, kind: str, doc_type: str, expected: int) -> None:
        """The project meetings the docs service derived from partner.events get minutes."""

        async def meetings() -> list[Json] | None:
            page = await self.api.get(
                "docs", "/v1/meetings", self.director, project_id=self.pid, kind=kind
            )
            items: list[Json] = page["items"]
            return items if len(items) >= expected else None

        found = await self.api.wait(
            f"{self.plan.label}: {expected} {kind} meeting(s) in docs", meetings
        )
        for meeting in found:
            if meeting["minutes_document_id"] is not None:
                continue
            day = self.story.clock.local_day(meeting["held_at"])
            name = f"{self.plan.title}-{day:%Y-%m-%d}-{doc_type}"
            fields = {
                "type": doc_type,
                "period": day.isoformat(),
                "project_id": self.pid,
                "name": name,
                "meeting_id": meeting["id"],
            }
            text = f"# {name}\n\n会议：{meeting['title']}\n主持：{self.pm.name}\n\n- 按计划推进\n"
            author = self.plan.specialists[0]
            await self.api.upload(author, fields, f"{name}.md", text.encode(), "text/markdown")
            self.count("minutes filed")
            self.count("documents filed")

    async def file_reports(self) -> None:
        """Weekly, monthly and quarterly reports (R4.3) under R4.4 names; some
        periods skipped (overdue), some reviewed by the PM and corrected."""
        plan = self.plan
        assert plan.end_on is not None
        last = min(plan.end_on, self.story.today)
        for kind in ("weekly", "monthly", "quarterly"):
            first = await self.first_period(kind)
            ratio = {"weekly": plan.report_ratio, "monthly": 0.9, "quarterly": 1.0}[kind]
            for start in periods(kind, first, last):
                current = start <= self.story.today < next_period(kind, start)
                if current or self.rng.random() < ratio:
                    await self.file_report(kind, start)

    async def first_period(self, kind: str) -> date:
        async def earliest() -> str | None:
            page = await self.api.get(
                "docs", "/v1/schedules", self.director, project_id=self.pid, kind=kind, limit="1"
            )
            return str(page["items"][0]["period"]) if page["items"] else None

        key = await self.api.wait(f"{self.plan.label}: its first {kind} report period", earliest)
        return period_start(kind, key)

    async def file_report(self, kind: str, start: date) -> None:
        doc_type, name = report_name(self.plan.title, kind, start)
        author = self.rng.choice(self.plan.specialists)
        key = period_key(kind, start)
        fields = {"type": doc_type, "period": key, "project_id": self.pid, "name": name}
        text = report_text(self.plan, name, key, self.rng)
        filed = await self.api.upload(author, fields, f"{name}.md", text.encode(), "text/markdown")
        self.count("documents filed")
        outcome = str((filed.get("filing") or {}).get("report"))
        counted = {"filed": "reports on time", "filed_late": "reports late"}
        self.count(counted.get(outcome, "reports counting for no period"))
        if self.rng.random() < 0.25:
            await self.review_report(filed, author, fields, name, text)

    async def review_report(
        self, doc: Json, author: Person, fields: dict[str, str], name: str, text: str
    ) -> None:
        """The PM reviews (R6.1 document accuracy); a correction is a new version."""
        path = f"/v1/documents/{doc['id']}/reviews"
        if self.rng.random() < 0.2:
            body = {"outcome": "needs_correction", "reasons": ["缺少风险清单与应对措施"]}
            await self.api.post("docs", path, self.pm, body)
            self.count("document reviews")
            fixed = text + "\n## 风险清单\n- 关键岗位人员变动：已安排AB角\n"
            note = {**fields, "note": "按评审意见补充风险清单"}
            await self.api.upload(author, note, f"{name}.md", fixed.encode(), "text/markdown")
            self.count("document versions (corrections)")
        await self.api.post("docs", path, self.pm, {"outcome": "accepted"})
        self.count("document reviews")


def _future_milestones(today: date) -> tuple[MilestonePlan, ...]:
    """Milestones of a project whose work has not begun."""
    return tuple(
        MilestonePlan(f"M{n}", name, what, today + timedelta(days=90 * n))
        for n, (name, what) in enumerate(MILESTONES[:3], start=1)
    )


def _justification(plan: ProjectPlan) -> str:
    return f"{plan.scope}，预算{plan.budget}元，经比选拟由{plan.partner.name}承接"


# -- report periods and names (R4.3, R4.4) ---------------------------------------------------------


def period_key(kind: str, start: date) -> str:
    if kind == "weekly":
        iso = start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if kind == "monthly":
        return f"{start:%Y-%m}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def period_start(kind: str, key: str) -> date:
    year, _, rest = key.partition("-")
    if kind == "weekly":
        return date.fromisocalendar(int(year), int(rest.lstrip("Ww")), 1)
    if kind == "monthly":
        return date(int(year), int(rest), 1)
    return date(int(year), 3 * int(rest.lstrip("Qq")) - 2, 1)


def next_period(kind: str, start: date) -> date:
    if kind == "weekly":
        return start + timedelta(days=7)
    if kind == "monthly":
        return date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return next_quarter(start)


def periods(kind: str, first: date, last: date) -> Iterator[date]:
    """The starts of the periods from `first`'s to the one containing `last`."""
    start = first
    while start <= last:
        yield start
        start = next_period(kind, start)


def report_name(title: str, kind: str, start: date) -> tuple[str, str]:
    """The document type and its R4.4 name, in the policy's own forms
    (a weekly report named by its month, as in `XX项目-2026年11月-周报`)."""
    if kind == "weekly":
        return "周报", f"{title}-{start.year}年{start.month}月-周报"
    if kind == "monthly":
        return "月报", f"{title}-{start.year}年{start.month}月-月报"
    return "季报", f"{title}-{start.year}年第{(start.month - 1) // 3 + 1}季度-季报"


def report_text(plan: ProjectPlan, name: str, key: str, rng: random.Random) -> str:
    done = rng.randint(60, 100)
    return (
        f"# {name}\n\n项目：{plan.title}\n合作伙伴：{plan.partner.name}\n报告期：{key}\n\n"
        f"## 本期进展\n- 计划任务完成率 {done}%\n- 系统可用性 {rng.uniform(99.5, 100):.2f}%\n\n"
        f"## 下期计划\n- {rng.choice(TASKS)}\n"
    )


# -- 4. the department: meetings, resolutions, emergencies (R5.3-R5.5) -----------------------------


@dataclass(frozen=True)
class MeetingPlan:
    kind: Literal["weekly_department", "quarterly_strategy"]
    title: str
    held_at: datetime
    chair: Person
    resolutions: tuple[tuple[str, Person, bool], ...]  # text, owner, done
    minutes_by: Person | None


def plan_meetings(story: Story) -> list[MeetingPlan]:
    """Every Monday's department meeting of the past year and the Director's
    quarterly strategy meetings."""
    rng, clock, roster = story.rng("meetings"), story.clock, story.roster
    staff = (*roster.managers, *roster.specialists)
    out: list[MeetingPlan] = []
    weeks = max(1, round(52 * story.months / 12))
    monday = story.today - timedelta(days=story.today.weekday() + 7 * (weeks - 1))
    while monday <= story.today:
        if monday not in clock.holidays:
            chair = roster.director if rng.random() < 0.8 else rng.choice(roster.managers)
            out.append(
                MeetingPlan(
                    "weekly_department",
                    f"信息技术部周例会 {monday:%Y-%m-%d}",
                    clock.at(monday, 10, 30),
                    chair,
                    tuple(
                        (text, rng.choice(staff), rng.random() < 0.6)
                        for text in rng.sample(RESOLUTIONS, rng.randint(1, 2))
                    ),
                    rng.choice(roster.specialists) if rng.random() < 0.9 else None,
                )
            )
        monday += timedelta(days=7)
    start = next_quarter(quarter_start(story.back(365)))
    while start <= story.today:
        day = clock.workday(start + timedelta(days=(2 - start.weekday()) % 7 + 7))
        if day <= story.today:
            out.append(
                MeetingPlan(
                    "quarterly_strategy",
                    f"{day.year}年第{(day.month - 1) // 3 + 1}季度战略会",
                    clock.at(day, 16),
                    roster.director,
                    tuple(
                        (text, rng.choice(roster.managers), rng.random() < 0.5)
                        for text in rng.sample(STRATEGY, 2)
                    ),
                    rng.choice(roster.managers),
                )
            )
        start = next_quarter(start)
    return sorted(out, key=lambda m: m.held_at)


async def hold_meeting(story: Story, plan: MeetingPlan) -> None:
    api, clock = story.api, story.clock
    attendees = [p.user_id for p in story.roster.everyone]
    body = {
        "kind": plan.kind,
        "title": plan.title,
        "held_at": plan.held_at.isoformat(),
        "attendees": attendees,
        "resolutions": [text for text, _, _ in plan.resolutions],
    }
    meeting = await api.post("docs", "/v1/meetings", plan.chair, body)
    api.tally.add(f"meetings: {plan.kind.replace('_', ' ')}")
    mid = meeting["id"]
    if plan.minutes_by is not None:
        day = plan.held_at.date()
        department = story.policy.documents.department_name
        name = f"{department}-{day.year}年{day.month}月{day.day}日-会议纪要"
        fields = {"type": "会议纪要", "period": day.isoformat(), "name": name, "meeting_id": mid}
        text = f"# {plan.title}\n\n" + "".join(
            f"- 决议：{t}（责任人 {o.name}）\n" for t, o, _ in plan.resolutions
        )
        await api.upload(plan.minutes_by, fields, f"{name}.md", text.encode(), "text/markdown")
        api.tally.add("minutes filed")
        api.tally.add("documents filed")
    rng = story.rng("resolutions", plan.title)
    for resolution, (_, owner, done) in zip(meeting["resolutions"], plan.resolutions, strict=True):
        rid = resolution["resolution_id"]
        deadline = clock.now + timedelta(days=rng.randint(3, 30))
        assignment = {"owner": owner.user_id, "deadline": deadline.isoformat()}
        await api.post(
            "docs", f"/v1/meetings/{mid}/resolutions/{rid}/assignment", plan.chair, assignment
        )
        api.tally.add("resolutions assigned")
        if done:
            note = {"note": "已落实，相关材料已归档"}
            await api.post("docs", f"/v1/meetings/{mid}/resolutions/{rid}/completion", owner, note)
            api.tally.add("resolutions completed")


async def department_year(story: Story, concurrency: int) -> None:
    meetings = plan_meetings(story)
    story.board.start("department meetings", len(meetings))
    limit = asyncio.Semaphore(concurrency)

    async def one(plan: MeetingPlan) -> None:
        async with limit:
            await guarded(story.board, plan.title, hold_meeting(story, plan))
        story.board.advance("department meetings")

    await asyncio.gather(*(one(plan) for plan in meetings))


async def emergencies(story: Story, projects: Sequence[ProjectOutcome]) -> None:
    """R5.3: the PM acted first; the written explanation follows (once within
    the hours, once late) and the Director decides after the fact."""
    running = [p for p in projects if p.plan.fate == "ongoing"] or list(projects)
    cases = (
        (story.clock.ago(hours=6), "生产服务器硬盘故障导致核心交易系统中断", None),
        (story.clock.at(story.back(40), 22), "机房空调故障，机柜温度超限", "未按预案先行报告"),
    )
    story.board.start("emergencies", len(cases))
    for n, (acted_at, what, refusal) in enumerate(cases):
        project = running[n % len(running)] if running else None
        await emergency(story, project, acted_at, what, refusal)
        story.board.advance("emergencies")


async def emergency(
    story: Story,
    project: ProjectOutcome | None,
    acted_at: datetime,
    what: str,
    refusal: str | None,
) -> None:
    api, director = story.api, story.roster.director
    pm = project.plan.manager if project else story.roster.managers[0]
    body = {
        "project_id": project.id if project else None,
        "what_happened": what,
        "action_taken": "临时调配备用设备并安排合作伙伴工程师连夜恢复",
        "resources_changed": ["备用服务器2台", "驻场工程师3人"],
        "acted_at": acted_at.isoformat(),
    }
    eid = (await api.post("approval", "/v1/emergencies", pm, body))["id"]
    explanation = {"explanation": "为避免业务长时间中断先行处置，现补充书面说明及费用明细"}
    await api.post("approval", f"/v1/emergencies/{eid}/explanation", pm, explanation)
    decision: Json = {"ratify": True} if refusal is None else {"ratify": False, "reason": refusal}
    await api.post("approval", f"/v1/emergencies/{eid}/decision", director, decision)
    api.tally.add("emergencies explained and decided")


async def probation_after_sanctions(story: Story, projects: Sequence[ProjectOutcome]) -> None:
    """R2.1: a partner sanctioned after a data leak goes on probation."""
    partners = {p.plan.partner.id: p.plan.partner for p in projects if p.sanctioned_partner}
    for partner in partners.values():
        current = await story.api.get(
            "partner", f"/v1/partners/{partner.id}", story.roster.director
        )
        if current["status"] not in ("qualified", "active"):
            continue
        body = {"action": "probation", "reason": "数据泄露事件调查结论：严重警告，整改期内观察"}
        await story.api.post(
            "partner", f"/v1/partners/{partner.id}/status", story.roster.director, body
        )
        story.api.tally.add("partners put on probation")


# -- the run ---------------------------------------------------------------------------------------


async def run_partners(story: Story, count: int, run_id: str) -> list[PartnerRef]:
    plans = [plan_partner(story, i, v, run_id) for i, v in enumerate(verdicts(count))]
    story.board.start("partners", len(plans))

    async def one(plan: PartnerPlan) -> PartnerRef | None:
        ref = await guarded(
            story.board, f"partner {plan.body['name']}", onboard_partner(story, plan)
        )
        story.board.advance("partners")
        return ref

    found = await asyncio.gather(*(one(p) for p in plans))
    return [p for p in found if p is not None]


async def run_projects(
    story: Story, count: int, partners: list[PartnerRef], concurrency: int
) -> list[ProjectOutcome]:
    story.board.start("projects", count)
    if not partners:
        story.board.fail("projects", DemoError("no qualified partner to work with"))
        return []
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> ProjectOutcome | None:
        plan = plan_project(story, index, partners[index % len(partners)])
        async with limit:
            outcome = await guarded(story.board, plan.label, ProjectRun(story, plan).live())
        story.board.advance("projects")
        return outcome

    found = await asyncio.gather(*(one(i) for i in range(count)))
    return [p for p in found if p is not None]


async def ready(api: Api, client: httpx.AsyncClient) -> None:
    """Every service answers /readyz (database and broker reachable)."""
    for name in SERVICE_NAMES:
        url = api.url(name, "/readyz")
        try:
            response = await client.get(url)
        except httpx.TransportError as exc:
            raise DemoError(
                f"the {name} service does not answer at {url} ({type(exc).__name__}):"
                " start the services first (`make run`)"
            ) from exc
        if response.status_code != 200:
            raise CallFailed("GET", url, response.status_code, response.text)


async def first_run(api: Api) -> bool:
    page = await api.get("partner", "/v1/partners", AUDITOR, limit="1")
    return not page["items"]


async def tell(
    settings: Settings,
    options: DemoOptions,
    board: Board,
    clock: Clock,
    policy: Policy,
    event_hooks: EventHooks | None = None,
) -> None:
    run_id = f"{int(clock.now.timestamp()):x}{secrets.token_hex(2)}"
    limits = httpx.Limits(max_connections=4 * options.concurrency + 8)
    async with httpx.AsyncClient(timeout=60, limits=limits, event_hooks=event_hooks) as client:
        api = Api(settings, client, board.tally, run_id)
        await ready(api, client)
        board.start("staff and trainings", 1 + len(TRAININGS))
        suffix = "" if await first_run(api) else f"-{_base36(int(clock.now.timestamp()))[-5:]}"
        roster = await build_roster(api, clock)
        board.advance("staff and trainings")
        story = Story(api, clock, policy, board, roster, options.seed, suffix, options.months)
        await the_year(story, options, run_id)


async def the_year(story: Story, options: DemoOptions, run_id: str) -> None:
    """Trainings and partners first; then the projects, with the department's
    meetings alongside; then what follows from the projects."""
    board, api = story.board, story.api
    await guarded(board, "trainings", hold_trainings(story))
    partners = await run_partners(story, options.partners, run_id)
    meetings = asyncio.create_task(
        guarded(board, "department meetings", department_year(story, options.concurrency))
    )
    projects = await run_projects(story, options.projects, partners, options.concurrency)
    await guarded(board, "emergencies", emergencies(story, projects))
    await guarded(board, "partner probation", probation_after_sanctions(story, projects))
    await meetings
    summary = await guarded(board, "kpi", api.get("kpi", "/v1/kpi/partners/summary", AUDITOR))
    if summary is not None:
        api.tally.notes.append(
            f"the kpi service has projected {summary['total']} partners so far,"
            f" by status {summary['by_status']}"
        )


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def run_demo(
    settings: Settings,
    options: DemoOptions,
    console: Console,
    *,
    event_hooks: EventHooks | None = None,
) -> int:
    """Loads the story; prints what it made and where to look. Exit code 1 if
    any call failed unexpectedly. `event_hooks` go to the HTTP client as they
    are (httpx's `request`/`response` hooks; bench/workload.py times every
    call with them)."""
    policy = load_policy(settings.policy_file)
    clock = Clock(policy.clock.zone, datetime.now(UTC), frozenset(policy.calendar.holidays))
    tally = Tally()
    started = time.monotonic()
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        board = Board(progress, tally)
        try:
            asyncio.run(tell(settings, options, board, clock, policy, event_hooks))
        except DemoError as exc:
            board.fail("demo", exc)
    console.print(summary_table(tally, time.monotonic() - started))
    for note in tally.notes:
        console.print(f"[dim]note:[/dim] {escape(note)}")
    console.print(where_to_look(settings))
    if tally.errors:
        console.print(f"[red bold]{len(tally.errors)} part(s) failed:[/red bold]")
        for error in tally.errors:
            console.print(f"[red]- {escape(error)}[/red]", highlight=False)
        return 1
    return 0


def summary_table(tally: Tally, seconds: float) -> Table:
    table = Table(title=f"Demo data loaded in {seconds:.0f} s")
    table.add_column("what")
    table.add_column("count", justify="right")
    for kind, n in sorted(tally.counts.items()):
        table.add_row(kind, str(n))
    table.add_row("[dim]HTTP calls[/dim]", str(tally.calls))
    table.add_row("[dim]retried (lost race, 503, connection)[/dim]", str(tally.retries))
    table.add_row("[dim]errors[/dim]", f"[red]{len(tally.errors)}[/red]" if tally.errors else "0")
    return table


def where_to_look(settings: Settings) -> str:
    def url(service: str, path: str) -> str:
        return f"http://{settings.host}:{settings.port_of(service)}{path}"

    docs = "\n".join(f"  {name:<9}{url(name, '/docs')}" for name in SERVICE_NAMES)
    return (
        "\n[bold]Where to look[/bold]\n"
        f"  KPI board      {url('kpi', '/')}   (sign in with a token, below)\n"
        f"  KPI API        {url('kpi', '/v1/kpi/partners/summary')}\n"
        f"                 {url('kpi', '/v1/kpi/staff')}\n"
        "  Grafana        the dashboards of deploy/grafana/ (see its README) read the kpi\n"
        f"                 projections in schema {settings.schema_of('kpi')!r} of DATABASE_URL\n"
        f"API docs (OpenAPI):\n{docs}\n"
        "  token          .venv/bin/partnerledger token --user director.zhang --role director\n"
        "  pipeline       .venv/bin/partnerledger status   (the deadline engines are now\n"
        "                 recording the year's missed clocks: overdue reports, reviews, kickoffs)"
    )
