"""The manager's console (issue #6): project settings, members, imports, exports, items, tokens."""

urlpatterns: list = []
