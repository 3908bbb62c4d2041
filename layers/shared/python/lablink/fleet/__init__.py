"""The EC2 work of the fleet, in three parts:

- ``dispatch``: the one seam that starts the provisioning step without waiting for it (in
  AWS, an asynchronous invoke of the provisioning function; a host process may install
  another way, as the local stack does);
- ``steps``: the step itself, launching or destroying one operation's VMs;
- ``ec2``: the calls to EC2 the steps make.
"""
