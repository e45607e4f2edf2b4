#!/usr/bin/env bash
# `make demo`: bring the local cluster up and show what runs on it.
set -euo pipefail
CLUSTER=${CLUSTER:-default}
infragenius devcluster up --name "$CLUSTER"
KUBECONFIG=$(infragenius devcluster kubeconfig --name "$CLUSTER")
export KUBECONFIG
KUBECTL=$(infragenius devcluster build | grep '/kubectl$')
echo
echo "\$ kubectl get nodes,pods -A"
"$KUBECTL" get nodes,pods -A
echo
echo "The cluster keeps running. Use it with: export KUBECONFIG=$KUBECONFIG"
echo "Stop it with: infragenius devcluster down --name $CLUSTER"
