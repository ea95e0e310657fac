"""The staff dashboard (issue 14): the queue, the case page and the supervisor's view.

Pages are thin: reads go through `objections.selectors` and `objections.dashboard.selectors`,
writes through the services. Every page needs a signed-in member of staff who has passed the
second factor; anyone else signed in gets a 404, so the pages do not show.
"""
