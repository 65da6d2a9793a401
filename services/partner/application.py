"""The partner service's application: command handlers; the only place that saves."""

from __future__ import annotations

from uuid import UUID

from services.partner.domain.partner import Contact, Partner, partner_id_for
from shared.domain import AlreadyExists, CommandContext, command_context
from shared.eventstore import IntegrityError, LedgerApplication


class PartnerApplication(LedgerApplication):
    SERVICE = "partner"
    AGGREGATES = (Partner,)

    def register_partner(
        self,
        ctx: CommandContext,
        *,
        name: str,
        unified_social_credit_code: str,
        contact: Contact,
        service_categories: list[str],
    ) -> Partner:
        partner_id = partner_id_for(unified_social_credit_code)
        with command_context(ctx):
            partner = Partner.register(
                name=name,
                unified_social_credit_code=unified_social_credit_code,
                contact=contact,
                service_categories=service_categories,
            )
        try:
            # The id is derived from the code: the store refuses a second one.
            self.save_in(ctx, partner)
        except IntegrityError:
            if partner_id in self.repository:
                raise AlreadyExists(
                    "R2.1",
                    "a partner with this unified social credit code is registered already",
                    partner_id,
                ) from None
            raise
        return partner

    def get_partner(self, partner_id: UUID) -> Partner:
        partner: Partner = self.repository.get(partner_id)
        return partner
