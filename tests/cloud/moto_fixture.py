#!/usr/bin/env python3
"""Seed a running moto server for the cloud/ integration test and benchmark.

Usage: moto_fixture.py http://127.0.0.1:PORT
Creates a VPC (10.0.0.0/16), a subnet (10.0.1.0/24), a security group and one
running m5.large instance in us-west-2 through boto3, and prints their ids as
one JSON object. moto accepts any credentials.
"""
import json
import sys

import boto3


def main():
    ec2 = boto3.client("ec2", region_name="us-west-2", endpoint_url=sys.argv[1],
                       aws_access_key_id="AKIDMOTO", aws_secret_access_key="moto-secret")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24",
                               AvailabilityZone="us-west-2a")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
    inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="m5.large",
                             SubnetId=subnet, SecurityGroupIds=[sg])["Instances"][0]["InstanceId"]
    print(json.dumps({"vpc": vpc, "subnet": subnet, "sg": sg, "instance": inst}))


if __name__ == "__main__":
    main()
