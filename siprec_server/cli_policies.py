"""``hangtar policies set|remove|list|history|test``, and what every lifecycle command of `cli_tenants` shares:
the handler context, output and exit codes. ``policies test`` is an operator's dry run of the decision a call
would get now, optionally with the announcement texts.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from storage.announcements import announcements
from storage.attribution import CallContext
from storage.audit import Actor
from storage.consent_terms import ConsentTerms
from storage.decision import Decision, decide
from storage.policies import PolicyScope, PolicyStore
from storage.policy_rules import CallDirection, Policy, PolicyDirection, PolicySpec
from storage.reference import new_reference
from storage.retention_class import Basis
from storage.tenant_models import Tenant, TenantNumber
from storage.tenants import TenantStore

__all__ = [
    "EXIT_FAILURE",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "POLICY_HANDLERS",
    "CliContext",
    "Handler",
    "StorageOptions",
    "actor_of",
    "add_policy_commands",
    "emit",
    "fail",
    "leaf",
    "print_policies",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REFUSED = 0, 1, 2, 3, 4

StorageOptions = Callable[[argparse.ArgumentParser], None]


def leaf(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    storage_options: StorageOptions,
    *,
    changes: bool = False,
) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text)
    storage_options(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    if changes:
        parser.add_argument(
            "--as", dest="as_user", metavar="USER", help="who is acting (for the audit trail)"
        )
    return parser


def _scope_options(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--system", action="store_true", help="calls no tenant claims")
    scope.add_argument("--tenant", metavar="SLUG", help="a tenant (with --number: one of its numbers)")
    parser.add_argument("--number", metavar="N", help="one of the tenant's numbers, as added")


def add_policy_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], opts: StorageOptions
) -> None:
    policies = commands.add_parser("policies", help="what is recorded, on which legal basis, for how long")
    actions = policies.add_subparsers(dest="action", required=True)
    directions = [d.value for d in PolicyDirection]
    put = leaf(
        actions, "set", "make a policy current for a scope and direction (a new version)", opts, changes=True
    )
    _scope_options(put)
    put.add_argument("--direction", choices=directions, default="both")
    put.add_argument("--not-recorded", action="store_true", help="this scope is not recorded")
    put.add_argument("--basis", choices=[b.value for b in Basis], help="GDPR Art. 6(1) legal basis")
    put.add_argument("--statute", help="the law requiring the recording (legal_obligation)")
    put.add_argument("--purpose", help="e.g. 'quality assurance', 'complaint handling'")
    put.add_argument("--retention", metavar="CODE", help="retention class: a preset or the tenant's own")
    put.add_argument("--format", default="flac", choices=["flac", "wav", "opus", "mp3"])
    put.add_argument("--consent-window", type=int, metavar="SECONDS", help="consent: answer window (10)")
    put.add_argument("--yes-digit", help="consent: key to agree (1)")
    put.add_argument("--no-digit", help="consent: key to refuse (2)")
    put.add_argument("--stop-digit", help="consent: key to stop recording during the call (9)")
    put.add_argument("--prompt-version", help="consent: version of the prompt played (v1)")
    remove = leaf(
        actions, "remove", "end a scope's policy; the broader scope applies again", opts, changes=True
    )
    _scope_options(remove)
    remove.add_argument("--direction", choices=directions, default="both")
    listing = leaf(actions, "list", "current policies of the system or of a tenant and its numbers", opts)
    scope = listing.add_mutually_exclusive_group(required=True)
    scope.add_argument("--system", action="store_true")
    scope.add_argument("--tenant", metavar="SLUG")
    history = leaf(actions, "history", "every version of a scope's policies", opts)
    _scope_options(history)
    history.add_argument("--direction", choices=directions)
    test = leaf(actions, "test", "dry run: the decision a call would get now", opts)
    test.add_argument("--calling", required=True, metavar="N", help="calling number, any written form")
    test.add_argument("--called", required=True, metavar="N", help="called number, any written form")
    test.add_argument("--direction", choices=[d.value for d in CallDirection])
    test.add_argument("--hint", metavar="H", help="the vendor tenant hint the metadata would carry")
    test.add_argument("--source", metavar="IP", help="the address the SIP request would come from")
    test.add_argument("--announce", action="store_true", help="also print the announcement texts")


class CliContext:
    """What a command handler works with: its arguments, the services and who acts."""

    __slots__ = ("actor", "args", "policies", "tenants")

    def __init__(
        self, *, args: argparse.Namespace, tenants: TenantStore, policies: PolicyStore, actor: Actor
    ):
        self.args = args
        self.tenants = tenants
        self.policies = policies
        self.actor = actor

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    async def tenant(self, slug: str | None = None) -> Tenant:
        return await self.tenants.get(slug if slug is not None else self.args.tenant)

    async def scope(self) -> tuple[PolicyScope, Tenant | None, TenantNumber | None]:
        if getattr(self.args, "system", False):
            if getattr(self.args, "number", None):
                raise ValueError("--number needs --tenant, not --system")
            return PolicyScope.system(), None, None
        tenant = await self.tenant()
        if getattr(self.args, "number", None):
            number = await self.tenants.find_number(tenant.id, self.args.number)
            return PolicyScope.for_number(tenant.id, number.id), tenant, number
        return PolicyScope.for_tenant(tenant.id), tenant, None


def actor_of(args: argparse.Namespace) -> Actor:
    user = getattr(args, "as_user", None)
    if user:
        return Actor(name=user, origin="cli")
    return Actor(name=f"cli:{getpass.getuser()}", origin="cli")


def fail(message: str, code: int) -> int:
    print(f"hangtar: {message}", file=sys.stderr)
    return code


def emit(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


# -- policies ---------------------------------------------------------------------------------------------------
def _spec(args: argparse.Namespace) -> PolicySpec:
    basis = None if args.basis is None else Basis(args.basis)
    terms = {
        key: value
        for key, value in (
            ("window_seconds", args.consent_window),
            ("yes_digit", args.yes_digit),
            ("no_digit", args.no_digit),
            ("stop_digit", args.stop_digit),
            ("prompt_version", args.prompt_version),
        )
        if value is not None
    }
    consent = ConsentTerms.from_json(terms) if terms or basis is Basis.CONSENT else None
    return PolicySpec(
        direction=PolicyDirection(args.direction),
        record=not args.not_recorded,
        basis=basis,
        statute=args.statute,
        purpose=args.purpose,
        retention=args.retention,
        format=args.format,
        consent=consent,
    )


async def _policies_set(ctx: CliContext) -> int:
    scope, _tenant, number = await ctx.scope()
    policy = await ctx.policies.set(scope, _spec(ctx.args), actor=ctx.actor)
    if ctx.json:
        emit(policy.to_json())
    else:
        print(f"{_scope_text(policy, number)} {policy.direction.value}: version {policy.version} is current")
        print_policies([policy], {} if number is None else {number.id: number})
    return EXIT_OK


async def _policies_remove(ctx: CliContext) -> int:
    scope, _tenant, number = await ctx.scope()
    ended = await ctx.policies.remove(scope, PolicyDirection(ctx.args.direction), actor=ctx.actor)
    if ctx.json:
        emit({"removed": ended.to_json()})
    else:
        print(
            f"{_scope_text(ended, number)} {ended.direction.value}: version {ended.version} ended; "
            f"the broader scope's policy applies"
        )
    return EXIT_OK


async def _policies_list(ctx: CliContext) -> int:
    tenant = None if ctx.args.system else await ctx.tenant()
    policies = await ctx.policies.list_current(None if tenant is None else tenant.id)
    numbers = {} if tenant is None else {n.id: n for n in await ctx.tenants.numbers(tenant.id)}
    if ctx.json:
        emit([policy.to_json() | _number_json(policy, numbers) for policy in policies])
        return EXIT_OK
    if not policies:
        print(
            "no policies of its own: the system policy applies"
            if tenant
            else "no system policy: calls no tenant claims are not recorded"
        )
        return EXIT_OK
    print_policies(policies, numbers)
    return EXIT_OK


async def _policies_history(ctx: CliContext) -> int:
    scope, _tenant, number = await ctx.scope()
    direction = None if ctx.args.direction is None else PolicyDirection(ctx.args.direction)
    versions = await ctx.policies.history(scope, direction)
    numbers = {} if number is None else {number.id: number}
    if ctx.json:
        emit([policy.to_json() | _number_json(policy, numbers) for policy in versions])
        return EXIT_OK
    print_policies(versions, numbers, history=True)
    return EXIT_OK


async def _policies_test(ctx: CliContext) -> int:
    a = ctx.args
    snapshot = await ctx.policies.snapshot()
    call = CallContext(
        calling=a.calling,
        called=a.called,
        direction=None if a.direction is None else CallDirection(a.direction),
        tenant_hint=a.hint,
        source_ip=a.source,
    )
    decision = decide(snapshot, call)
    texts = announcements(decision, new_reference()) if a.announce else {}
    if ctx.json:
        emit(
            decision.to_json()
            | ({"announcements": {k.value: v.text for k, v in texts.items()}} if texts else {})
        )
        return EXIT_OK
    _print_decision(decision)
    for language, text in texts.items():
        print(f"{'announce ' + language.value:<18} {text.text}")
    return EXIT_OK


def _scope_text(policy: Policy, number: TenantNumber | None) -> str:
    if policy.tenant_id is None:
        return "system"
    return f"number {number.display}" if number is not None else "tenant"


def _number_json(policy: Policy, numbers: dict[int, TenantNumber]) -> dict[str, Any]:
    number = numbers.get(policy.number_id) if policy.number_id is not None else None
    return {"number": None if number is None else number.value}


def print_policies(
    policies: Sequence[Policy], numbers: dict[int, TenantNumber], *, history: bool = False
) -> None:
    extra = f" {'CREATED (UTC)':<20} {'SUPERSEDED (UTC)':<20} BY" if history else ""
    print(
        f"{'SCOPE':<24} {'DIRECTION':<9} {'VER':>3} {'RECORD':<6} {'BASIS':<19} {'RETENTION':<24} "
        f"PURPOSE{extra}"
    )
    for policy in policies:
        number = numbers.get(policy.number_id) if policy.number_id is not None else None
        scope = policy.scope.value if number is None else f"number {number.display}"
        basis = policy.basis.value if policy.basis else "-"
        purpose = (policy.purpose or "-") + (f" [{policy.statute}]" if policy.statute else "")
        line = (
            f"{scope:<24} {policy.direction.value:<9} {policy.version:>3} {'yes' if policy.record else 'no':<6} "
            f"{basis:<19} {policy.retention_code or '-':<24} {purpose}"
        )
        if history:
            line += f" {_when(policy.created_at):<20} {_when(policy.superseded_at):<20} {policy.created_by}"
        print(line)


def _when(value: Any) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _print_decision(decision: Decision) -> None:
    rows: list[tuple[str, Any]] = [
        ("record", "yes" if decision.record else f"no ({decision.reason.value})"),
        ("tenant", f"{decision.tenant_slug} ({decision.tenant_name})" if decision.tenant_slug else "(none)"),
        ("attributed by", decision.attributed_by.value),
        ("tenant's party", decision.tenant_party.value if decision.tenant_party else "-"),
        ("tenant's number", decision.tenant_number or "-"),
        (
            "direction",
            (decision.direction.value + (" (inferred)" if decision.direction_inferred else ""))
            if decision.direction
            else "unknown",
        ),
        ("numbers", ", ".join(decision.numbers) or "-"),
    ]
    if decision.policy_id is not None:
        rows.append(("policy", f"#{decision.policy_id} version {decision.policy_version} ({decision.scope})"))
    if decision.record:
        retention = decision.retention
        assert retention is not None and decision.basis is not None
        rows += [
            ("basis", decision.basis.value + (f" ({decision.statute})" if decision.statute else "")),
            ("purpose", decision.purpose),
            (
                "retention",
                f"{retention.code}: {retention.days} days" + (" (statutory)" if retention.statutory else ""),
            ),
            ("format", decision.format),
        ]
        if decision.consent is not None:
            c = decision.consent
            rows.append(
                (
                    "consent",
                    f"yes={c.yes_digit} no={c.no_digit} stop={c.stop_digit} window={c.window_seconds}s "
                    f"prompt={c.prompt_version}",
                )
            )
    for key, value in rows:
        print(f"{key:<18} {value}")


Handler = Callable[[CliContext], Awaitable[int]]
POLICY_HANDLERS: dict[tuple[str, str], Handler] = {
    ("policies", "set"): _policies_set,
    ("policies", "remove"): _policies_remove,
    ("policies", "list"): _policies_list,
    ("policies", "history"): _policies_history,
    ("policies", "test"): _policies_test,
}
