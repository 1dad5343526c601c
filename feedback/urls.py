from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from labeling.api import api
from labeling.views import annotate, projects

urlpatterns = [
    # First: the API's requests are the most frequent, and the resolver tries patterns in order.
    path("api/", api.urls),
    path("", projects.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("p/<slug:slug>/", projects.overview, name="project_overview"),
    path("p/<slug:slug>/stats/refresh/", projects.stats_refresh, name="project_stats_refresh"),
    path("p/<slug:slug>/stats/status/", projects.stats_status, name="project_stats_status"),
    path("p/<slug:slug>/annotate/", annotate.annotate, name="annotate"),
    path("p/<slug:slug>/annotate/<str:assignment_id>/judge/", annotate.judge, name="judge"),
    path("p/<slug:slug>/annotate/<str:assignment_id>/skip/", annotate.skip, name="skip"),
    path("p/<slug:slug>/history/", annotate.history, name="history"),
    path("p/<slug:slug>/judgments/<str:judgment_id>/", annotate.revise, name="revise"),
    path("", include("labeling.urls_manage")),
    path("admin/", admin.site.urls),
]
