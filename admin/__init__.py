"""The config lifecycle for admins (issue 12): every applied version of hotline.yaml kept with
who, when and why (:mod:`admin.versions`); validate, diff, apply without dropping a call and
roll back (:mod:`admin.lifecycle`)."""
