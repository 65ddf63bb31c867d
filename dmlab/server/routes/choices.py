"""``GET /choices``: the lab's readings of the CR, and which option of each is in force."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..context import services
from ..negotiation import wants_html
from ..operation import PEOPLE, Operation, json_answer
from ..pages import page


async def list_choices(request: Request) -> Response:
    """Every lab choice from the registry, with the option this server runs."""
    rows = services(request).choices.describe()
    if wants_html(request):
        return page(request, "choices.html", title="The lab's choices", choices=rows)
    return JSONResponse({"Choices": rows})


routes = [
    Operation(
        "GET",
        "/choices",
        list_choices,
        "The lab's choices where the CR is silent: options, default and the one in force.",
        PEOPLE,
        responses={
            200: json_answer(
                "ChoiceList",
                "Every lab choice; `inForce` is the option this server runs (empty: fixed).",
                html=True,
            )
        },
    ),
]
