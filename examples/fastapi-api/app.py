"""An API that trusts the IdP's access tokens, verified offline. Run: ``uvicorn app:app --port 8001``."""

from typing import Annotated

from fastapi import Depends, FastAPI
from idp_auth import AuthError, IdPAuth, User, auth_error_response
from pydantic import BaseModel

auth = IdPAuth.from_env()  # IDP_ISSUER, IDP_AUDIENCE, IDP_JWKS_URL, IDP_ALGORITHMS (see README.md)

app = FastAPI(title="Example API behind the IdP")
app.add_exception_handler(AuthError, auth_error_response)


class Profile(BaseModel):
    user_id: str
    email: str | None
    roles: list[str]


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/profile")
async def profile(user: Annotated[User, Depends(auth)]) -> Profile:
    """Who the token says the caller is: no database, no call to the IdP."""
    return Profile(user_id=user.id, email=user.email, roles=list(user.roles))
