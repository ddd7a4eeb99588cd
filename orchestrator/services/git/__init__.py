"""Git integrations (GitHub, GitLab, Gitea): signed webhooks trigger runs; results go back."""
