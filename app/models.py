"""Every table of every feature, imported so that ``Base.metadata`` knows them all.

Alembic's environment and the schema tests import this module; a feature that adds
``models.py`` adds one import here.
"""

from app.alerts import models as alerts
from app.db import Base
from app.digests import models as digests
from app.rollups import models as rollups

__all__ = ["Base", "alerts", "digests", "rollups"]
