#!/usr/bin/env python3
"""Seed a running moto server for the cloud/ integration test and benchmark.

Usage: moto_fixture.py http://127.0.0.1:PORT [--auth]
Creates a VPC (10.0.0.0/16), a subnet (10.0.1.0/24), a security group and one
running m5.large instance in us-west-2 through boto3, and prints their ids as
one JSON object. moto accepts any credentials, unless it runs with
INITIAL_NO_AUTH_ACTION_COUNT=3 for --auth: then the first three (unchecked)
calls create an IAM user with an allow-all policy and an access key, which
signs everything after and is printed too ("ak", "sk").
"""
import json
import sys

import boto3


def iam_user(url):
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=url,
                       aws_access_key_id="AKIDMOTO", aws_secret_access_key="moto-secret")
    iam.create_user(UserName="vpc-ipam")
    iam.put_user_policy(UserName="vpc-ipam", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="vpc-ipam")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def main():
    ak, sk = iam_user(sys.argv[1]) if "--auth" in sys.argv else ("AKIDMOTO", "moto-secret")
    ec2 = boto3.client("ec2", region_name="us-west-2", endpoint_url=sys.argv[1],
                       aws_access_key_id=ak, aws_secret_access_key=sk)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24",
                               AvailabilityZone="us-west-2a")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
    inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="m5.large",
                             SubnetId=subnet, SecurityGroupIds=[sg])["Instances"][0]["InstanceId"]
    print(json.dumps({"vpc": vpc, "subnet": subnet, "sg": sg, "instance": inst, "ak": ak, "sk": sk}))


if __name__ == "__main__":
    main()
