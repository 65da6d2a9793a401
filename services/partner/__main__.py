from services.partner.service import SPEC
from shared.runtime import main

main(SPEC)
