"""Memory housekeeping for the long bulk operations (imports, exports)."""

import gc
from contextlib import contextmanager


@contextmanager
def older_objects_frozen():
    """Keep the cyclic garbage collector off the objects that existed before a bulk operation.

    An import or export allocates millions of short-lived tuples and lists; each batch's
    survive long enough to reach the oldest generation, whose collections then walk every
    object of Django, datasets and pyarrow again and again: about 45 % of an export's CPU
    before this, and 0.3 to 0.5 s per 100,000 imported pairs. Objects made during the
    operation are still collected; `unfreeze` hands the older ones back to the collector
    afterwards, also when the operation fails.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
