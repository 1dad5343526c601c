"""The WSGI application, loaded whole before the first request.

Django imports the URLconf, and with it every view and the libraries they import
(`datasets`, `pyarrow`, `pandas`: about 1.4 s of CPU), on the first request a process
serves. Each gunicorn worker would make one annotator wait for that. Resolving a URL
here moves the cost to the worker's start, before it accepts connections.
"""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import reverse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback.settings")
application = get_wsgi_application()
reverse("labeling:home")  # imports the URLconf and builds its reverse index
