"""Every table of every feature, imported so that ``Base.metadata`` knows them all.

Alembic's environment and the schema tests import this module; a feature that adds
``models.py`` adds one import here.
"""

from app.db import Base

__all__ = ["Base"]
