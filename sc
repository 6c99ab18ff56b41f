Host *
  User root
  IdentityFile /tmp/proto/ck
  IdentitiesOnly yes
  UserKnownHostsFile /tmp/proto/kh
  StrictHostKeyChecking yes
  BatchMode yes
