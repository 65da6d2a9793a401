from services.docs.service import SPEC
from shared.runtime import main

main(SPEC)
