"""Server-rendered operator pages (htmx for live fragments, no front-end build)."""

from smmc.web.pages.routes import forbidden_page, login_redirect, router

__all__ = ["forbidden_page", "login_redirect", "router"]
