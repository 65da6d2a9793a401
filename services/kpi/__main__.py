from services.kpi.service import SPEC
from shared.runtime import main

main(SPEC)
