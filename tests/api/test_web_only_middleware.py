"""The API reads no session and sets no cookie; the web UI keeps its session, CSP and messages."""

from django.urls import reverse


def test_a_logged_in_session_alone_does_not_open_the_api(client, annotator, project, items):
    client.force_login(annotator)
    response = client.post(f"/api/projects/{project.slug}/next")
    assert response.status_code == 401
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    assert "Content-Security-Policy" not in response.headers


def test_the_web_ui_still_runs_sessions_and_csp(client, annotator, project, items):
    client.force_login(annotator)
    response = client.get(reverse("labeling:annotate", args=[project.slug]))
    assert response.status_code == 200
    assert response.wsgi_request.user == annotator  # the session logged them in
    assert "Content-Security-Policy" in response.headers
