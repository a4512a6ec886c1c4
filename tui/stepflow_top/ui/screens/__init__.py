"""The screens: the executions list, an execution's detail, a step's log, database
health and help. A screen posts messages (``ui.messages``) and the App navigates: no
screen imports another, or the App."""
