"""Storage behind Protocols; one real implementation per backend."""

from service.store.base import NewUser, StorageUnavailable, User, UserStore

__all__ = ["NewUser", "StorageUnavailable", "User", "UserStore"]
