from services.approval.service import SPEC
from shared.runtime import main

main(SPEC)
