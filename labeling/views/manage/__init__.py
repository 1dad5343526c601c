"""The manager's console (issue #6): thin views over labeling.services; routes in labeling/urls.py.

Manager pages fetch their project through labeling.access.project_for_manager:
outsiders get 404, the project's annotators 403, anonymous users the login page.
"""
